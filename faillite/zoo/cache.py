"""Where generated models live: ``$FAILLITE_CACHE`` or ``~/.cache/faillite``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "standin_dir"]


def cache_dir() -> Path:
    env = os.environ.get("FAILLITE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "faillite"


def standin_dir(family: str, scale: float, input_px: int = 224, root: Path | None = None) -> Path:
    """Each (scale, input size) gets its own directory so differently sized builds never mix."""
    base = root or cache_dir() / "standins"
    return base / f"scale-{scale:g}-px{input_px}" / family
