"""Running a process's main coroutine on the fastest event loop available.

uvloop (libuv under asyncio's API) cuts the loop's own cost per request; where it is not
installed (or not built, e.g. on Windows) the standard loop is used, and
``FAILLITE_EVENT_LOOP=asyncio`` forces the standard one (for comparisons and debugging; an
unknown value is logged and ignored).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["ENV_VAR", "loop_factory", "run"]

ENV_VAR = "FAILLITE_EVENT_LOOP"
T = TypeVar("T")
log = logging.getLogger("faillite")


def loop_factory(choice: str | None = None) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop to use, by name, and its factory: ``uvloop`` unless unavailable or ``choice``
    (default: ``$FAILLITE_EVENT_LOOP``) is ``asyncio``."""
    choice = (choice if choice is not None else os.environ.get(ENV_VAR, "")).strip().lower()
    if choice not in ("", "uvloop", "asyncio"):
        log.warning("%s=%r is neither 'uvloop' nor 'asyncio'; using the default", ENV_VAR, choice)
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``loop_factory`` picks."""
    name, factory = loop_factory()
    log.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
