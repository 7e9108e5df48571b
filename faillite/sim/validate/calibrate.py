"""What real runs say about the simulator's timing model: the measured delays behind each phase.

``real_timings(run)`` reads a real run's events (``t_ms`` after the failure) and probes;
``measured_constants(runs)`` turns them into the ``SimTiming`` constants they measure and
``measured_timing(runs)`` into a ``SimTiming`` (a calibration: measure on some runs, validate on
others). Load and inference times are not constants of the timing model (the simulated agents take
them from timing profiles: ``faillite.sim.validate.measure``), so they are reported, not
calibrated: see ``real_timings``' ``loads`` (the controller's load RPC, ``agent_ms``) and
``answer_p50``/``answer_p99``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from faillite.bench.stats import percentile
from faillite.sim.real import RealRun
from faillite.sim.timing import SimTiming

__all__ = ["measured_constants", "measured_timing", "measured_timings", "real_timings"]


def real_timings(run: RealRun) -> dict[str, Any]:
    """``measured_timings`` of the run's events, plus the probes' answer times before the failure
    (``answer_p50``/``answer_p99`` by app, ms: the client hedges after max(3 x p50, p99) of them)."""
    before: dict[str, list[float]] = {}
    for inj in run.injections:
        for app, records in inj.probes.items():
            before[app] = [(r.end - r.start) * 1000 for r in records if r.ok and r.end < inj.failed_at]
    return {
        **measured_timings(run.events, run.failed_nodes),
        "answer_p50": {a: _pct(v, 50) for a, v in sorted(before.items())},
        "answer_p99": {a: _pct(v, 99) for a, v in sorted(before.items())},
    }


def _pct(values: list[float], q: float) -> float | None:
    p = percentile(values, q)
    return None if p is None else round(p, 3)


def measured_timings(events: Sequence[Mapping[str, Any]], failed: Sequence[str]) -> dict[str, Any]:
    """From ``RealRun.events`` (``t_ms`` after the failure), in ms:
    - ``node_dead``: the controller's verdict (a crash: its agent connection closed);
    - ``warm_switch``: node_dead -> each warm-backed app's route_changed, by app;
    - ``recovery_plan``: node_dead -> the first load of a recovery program (not a warm backup's
      re-protection load);
    - ``loads``: each load after the failure, load_started -> load_finished, with its reason and
      the agent's own measurement (``agent_ms``);
    - ``publish``: a load_finished -> the route_changed to that replica."""
    evs = sorted(events, key=lambda e: e["t_ms"])
    dead = [e["t_ms"] for e in evs if e["kind"] == "node_dead" and e.get("node") in failed]
    t_dead = min(dead) if dead else None
    warm: dict[str, float] = {}
    loads: list[dict[str, Any]] = []
    publish: list[float] = []
    started: dict[tuple[Any, ...], dict[str, Any]] = {}
    finished: dict[tuple[Any, ...], float] = {}
    for e in evs:
        key = (e.get("app"), e.get("node"), e.get("variant"))
        if e["kind"] == "route_changed" and e.get("reason") == "warm backup" and t_dead is not None:
            warm.setdefault(e["app"], round(e["t_ms"] - t_dead, 3))
        elif e["kind"] == "route_changed" and key in finished:
            publish.append(round(e["t_ms"] - finished.pop(key), 3))
        elif e["kind"] == "load_started":
            started.setdefault(key, e)
        elif e["kind"] == "load_failed":
            started.pop(key, None)
        elif e["kind"] == "load_finished" and key in started:
            first = started.pop(key)
            finished[key] = e["t_ms"]
            loads.append(
                {
                    "app": key[0],
                    "node": key[1],
                    "variant": key[2],
                    "reason": first.get("reason"),
                    "ms": round(e["t_ms"] - first["t_ms"], 3),
                    "agent_ms": e.get("ms"),
                }
            )
    programs = [e["t_ms"] for e in evs if e["kind"] == "load_started" and e.get("reason") != "warm backup"]
    return {
        "node_dead": t_dead,
        "warm_switch": warm,
        "recovery_plan": None if not programs or t_dead is None else round(min(programs) - t_dead, 3),
        "loads": loads,
        "publish": publish,
    }


#: SimTiming field -> how it is read from a real run's timings (ms), over the runs' median
_CONSTANTS = {
    "crash_close_s": lambda t: [t["node_dead"]] if t["node_dead"] is not None else [],
    "decide_s": lambda t: list(t["warm_switch"].values()),
    "recovery_plan_s": lambda t: [t["recovery_plan"]] if t["recovery_plan"] is not None else [],
    "publish_s": lambda t: list(t["publish"]),
}


def measured_constants(runs: Sequence[RealRun]) -> dict[str, float | None]:
    """The ``SimTiming`` constants the real runs measured (seconds; median over every sample):
    crash detection (failure -> node_dead), a warm switch (node_dead -> route_changed), the
    recovery plan (node_dead -> a program's first load), publish (load_finished -> route_changed).
    Load and inference times are the profiles', not constants: see ``RealRun.measured_load_ms``."""
    timings = [real_timings(r) for r in runs]
    out: dict[str, float | None] = {}
    for name, read in _CONSTANTS.items():
        values = [v for t in timings for v in read(t)]
        out[name] = round(statistics.median(values) / 1000, 6) if values else None
    return out


def measured_timing(runs: Sequence[RealRun], base: SimTiming | None = None) -> SimTiming:
    """``base`` (default ``SimTiming()``) with the constants ``measured_constants`` found."""
    found = {k: v for k, v in measured_constants(runs).items() if v is not None}
    return replace(base or SimTiming(), **found)
