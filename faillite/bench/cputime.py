"""CPU accounting for the benchmarks, through psutil: a process's CPU time and share, and the
box's utilisation over a window. The one place the benchmarks read CPU times.

The arithmetic is pure (``cpu_share``, ``box_utilisation`` on two samples, ``box_sample`` from
psutil's per-state times); the ``sample_*`` functions and ``cpu_seconds`` only read. A share is
"% of one core": 100 means one core busy for the whole window, so a process on two busy cores
reads 200.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = [
    "BoxSample",
    "ProcSample",
    "box_sample",
    "box_utilisation",
    "cpu_clock",
    "cpu_seconds",
    "cpu_share",
    "loadavg",
    "sample_box",
    "sample_process",
    "with_children",
]


@dataclass(frozen=True)
class ProcSample:
    pid: int
    cpu_s: float  # user + system seconds of the process (all its threads)
    at: float  # time.monotonic() when read


@dataclass(frozen=True)
class BoxSample:
    busy: float  # seconds every core spent on anything but idle and iowait, summed
    total: float  # all seconds of every core, summed
    cores: int


def cpu_share(before: ProcSample, after: ProcSample) -> float:
    """% of one core that the process used between two samples."""
    if after.pid != before.pid:
        raise ValueError("samples of different processes")
    window = after.at - before.at
    if window <= 0:
        raise ValueError("the second sample must be later than the first")
    return 100.0 * (after.cpu_s - before.cpu_s) / window


def box_sample(times: Any, cores: int) -> BoxSample:
    """A ``BoxSample`` from the box's per-state CPU times (``psutil.cpu_times()``'s fields)."""
    fields = times._asdict() if hasattr(times, "_asdict") else dict(times)
    # guest and guest_nice are already counted in user and nice
    total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
    idle = fields["idle"] + fields.get("iowait", 0.0)
    return BoxSample(busy=total - idle, total=total, cores=max(1, cores))


def box_utilisation(before: BoxSample, after: BoxSample) -> dict[str, float]:
    """Busy share of the whole box between two samples: ``percent`` of all cores, and ``cores``
    busy on average (percent x cores / 100)."""
    total = after.total - before.total
    if total <= 0:
        raise ValueError("the second sample must be later than the first")
    percent = 100.0 * (after.busy - before.busy) / total
    return {"percent": round(percent, 1), "cores_busy": round(percent * after.cores / 100, 2)}


def _seconds(pid: int) -> float:
    """User + system seconds of ``pid``; ProcessLookupError when it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess as exc:
        raise ProcessLookupError(pid) from exc
    return float(times.user + times.system)


def sample_process(pid: int, now: float) -> ProcSample:
    """The process's CPU time at ``now``; ProcessLookupError (an OSError) when it is gone."""
    return ProcSample(pid, _seconds(pid), now)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system seconds used so far by ``pids`` together (a process that is gone counts 0)."""
    total = 0.0
    for pid in pids:
        try:
            total += _seconds(pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return total


def cpu_clock(pids: Callable[[], Sequence[int]]) -> Callable[[], float]:
    """A clock reading the CPU seconds used so far by the processes ``pids()`` returns."""
    return lambda: cpu_seconds(pids())


def with_children(pid: int) -> list[int]:
    """``pid`` and its descendants now (none when it is gone)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def sample_box() -> BoxSample:
    return box_sample(psutil.cpu_times(), psutil.cpu_count() or 1)


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(v) for v in psutil.getloadavg()]
