"""The controller's dashboard: plain HTML, CSS and JavaScript served at ``/`` (no build step).

The page reads ``/v1/status`` and follows ``/v1/events/watch`` (WebSocket), refreshing its
picture on every event.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"
