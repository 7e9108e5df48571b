"""CPU accounting from /proc: a process's CPU share and the box's utilisation over a window.

The parsing and the arithmetic are pure (``parse_*``, ``cpu_share``, ``box_utilisation``); the
``sample_*`` functions only read the files. A share is "% of one core": 100 means one core busy
for the whole window, so a process on two busy cores reads 200.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "BoxSample",
    "ProcSample",
    "box_utilisation",
    "cpu_share",
    "loadavg",
    "parse_proc_stat",
    "parse_system_stat",
    "sample_box",
    "sample_process",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcSample:
    pid: int
    ticks: int  # utime + stime of the process (all its threads), in clock ticks
    at: float  # time.monotonic() when read


@dataclass(frozen=True)
class BoxSample:
    busy: int  # ticks every core spent on anything but idle and iowait, summed
    total: int  # all ticks of every core, summed
    cores: int


def parse_proc_stat(text: str) -> int:
    """utime + stime (ticks) from the text of /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may contain spaces and ')', so fields are
    counted after the last ')': utime and stime are fields 14 and 15 of the whole line."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): field n is rest[n - 3]
    return int(rest[11]) + int(rest[12])


def parse_system_stat(text: str) -> BoxSample:
    """The aggregate ``cpu`` line of /proc/stat (user nice system idle iowait irq softirq steal ...)."""
    cores = 0
    aggregate: list[int] | None = None
    for line in text.splitlines():
        if line.startswith("cpu "):
            aggregate = [int(v) for v in line.split()[1:]]
        elif line.startswith("cpu") and line[3:4].isdigit():
            cores += 1
    if aggregate is None:
        raise ValueError("no aggregate 'cpu' line in /proc/stat")
    # guest and guest_nice (fields 9 and 10) are already counted in user and nice
    fields = aggregate[:8]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields)
    return BoxSample(busy=total - idle, total=total, cores=max(1, cores))


def cpu_share(before: ProcSample, after: ProcSample, hz: int = CLOCK_TICKS) -> float:
    """% of one core that the process used between two samples."""
    if after.pid != before.pid:
        raise ValueError("samples of different processes")
    window = after.at - before.at
    if window <= 0:
        raise ValueError("the second sample must be later than the first")
    return 100.0 * (after.ticks - before.ticks) / hz / window


def box_utilisation(before: BoxSample, after: BoxSample) -> dict[str, float]:
    """Busy share of the whole box between two samples: ``percent`` of all cores, and ``cores``
    busy on average (percent x cores / 100)."""
    total = after.total - before.total
    if total <= 0:
        raise ValueError("the second sample must be later than the first")
    percent = 100.0 * (after.busy - before.busy) / total
    return {"percent": round(percent, 1), "cores_busy": round(percent * after.cores / 100, 2)}


def sample_process(pid: int, now: float) -> ProcSample:
    with open(f"/proc/{pid}/stat") as f:
        return ProcSample(pid, parse_proc_stat(f.read()), now)


def sample_box() -> BoxSample:
    with open("/proc/stat") as f:
        return parse_system_stat(f.read())


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]
