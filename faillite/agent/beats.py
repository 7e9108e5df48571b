"""The agent's beat thread: a 22-byte UDP beat per interval, never queued behind request handling.

The thread needs only the GIL (released by the event loop at least every 5 ms), not the
event loop. It still proves the loop runs: every 4th beat schedules a tick on the loop, and
each beat reports how stale the last tick is as the agent's loop lag (a wedged loop shows up as
a growing lag; the controller declares it dead past ``stall_limit_ms``). It also reports the
CPU pressure of the agent's box (Linux PSI, read every 5 s).

The fence rule (see ``faillite.agent.link``) is decided by ``beat_step``, a pure function of
one timestamp: the same instant decides whether the silence before this beat broke the
promise and becomes the beat's send time, so a pause between the check and the send is
never lost (it counts against the next beat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from faillite.wire import Beat

__all__ = ["BeatStep", "BeatThread", "beat_step", "cpu_pressure"]

log = logging.getLogger("faillite.agent")

_PSI = Path("/proc/pressure/cpu")
TICK_EVERY = 4  # beats per tick on the event loop (its staleness, the status check)
_PRESSURE_EVERY_S = 5.0  # PSI's avg10 is a 10 s average: reading it more often buys nothing


@dataclass(frozen=True, slots=True)
class BeatStep:
    fence: bool  # the silence before this beat exceeded the promise: ask for confirmation
    last_sent: float  # the new "last beat left at": the same instant the check used


def beat_step(t: float, last_sent: float, fence_after_s: float) -> BeatStep:
    """Decide a beat about to leave, from one timestamp ``t`` taken before the check.

    ``last_sent`` becomes ``t`` (not a later reading): the beat leaves at ``t`` or after, so
    the silence the controller measures never exceeds ours, and a pause after ``t`` but
    before the send counts against the next beat instead of vanishing.
    """
    return BeatStep(t - last_sent > fence_after_s, t)


class _Link(Protocol):
    """What the beat thread reads and calls on its ``ControllerLink``."""

    last_sent: float
    loop_seen: float
    fence_after_s: float
    promise_version: int
    _must_confirm: bool

    def _paused(self) -> None: ...
    def _tick(self) -> None: ...


class BeatThread(threading.Thread):
    """Beats from a small thread over UDP, so they never queue behind request handling."""

    def __init__(
        self,
        link: _Link,
        loop: asyncio.AbstractEventLoop,
        addr: Any,
        *,
        node_id: str,
        epoch: int,
        session: int,
        interval_s: float,
    ) -> None:
        super().__init__(name=f"beats-{node_id}", daemon=True)
        self.link = link
        self.loop = loop
        self.family, _, _, _, self.sockaddr = addr
        self.epoch = epoch
        self.session = session
        self.interval_s = interval_s
        self.seq = 0  # this thread's own counter (confirm beats on the loop have theirs)
        self.errors = 0
        self._halt = threading.Event()  # not `_stop`: that would shadow Thread._stop (join breaks)

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        """Beat until stopped; an unexpected error is logged and the beating starts again."""
        while not self._halt.is_set():
            try:
                self._beat_forever()
                return
            except Exception:
                self.errors += 1
                log.exception("beat thread %s failed; restarting it", self.name)
                if self._halt.wait(self.interval_s):  # no hot loop if it fails at once again
                    return

    def _beat_forever(self) -> None:
        link = self.link
        with socket.socket(self.family, socket.SOCK_DGRAM) as sock:
            due = time.monotonic()
            pressure, pressure_due, ticks = 0, due, 0
            while True:
                due += self.interval_s
                if self._halt.wait(max(due - time.monotonic(), 0.0)):
                    return
                t = time.monotonic()
                if t - due > self.interval_s:  # do not burst to catch up after a pause
                    due = t
                step = beat_step(t, link.last_sent, link.fence_after_s)
                if step.fence:
                    link._must_confirm = True  # before the beat: admit sees it at once
                    self._call(link._paused)
                link.last_sent = step.last_sent
                lag = max(t - link.loop_seen - TICK_EVERY * self.interval_s, t - due, 0.0)
                if t >= pressure_due:
                    pressure, pressure_due = cpu_pressure(), t + _PRESSURE_EVERY_S
                ticks += 1
                if ticks % TICK_EVERY == 0:
                    self._call(link._tick)
                self.seq += 1
                beat = Beat(
                    self.seq,
                    self.epoch,
                    round(lag * 1000),
                    link.promise_version,
                    False,
                    self.session,
                    pressure,
                )
                try:
                    sock.sendto(beat.pack(), self.sockaddr)
                except OSError as exc:
                    log.debug("beat: %s", exc)

    def _call(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self.loop.call_soon_threadsafe(callback)


def cpu_pressure() -> int:
    """Linux PSI: % of the last 10 s some runnable task waited for a CPU (0 where unavailable)."""
    try:
        first = _PSI.read_text().split("\n", 1)[0]  # "some avg10=12.34 avg60=... total=..."
        return round(float(first.split()[1].split("=")[1]))
    except (OSError, IndexError, ValueError):
        return 0
