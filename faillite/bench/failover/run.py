"""Run one policy's cluster through every injected failure, under open-loop (or closed-loop) load.

One cluster per (scenario, policy, headroom), reused for every injection
(``faillite.bench.failover.inject``: probes, failure, settling, restore). The workload runs the
whole time: ``open`` (default) is Poisson arrivals at each app's rate (``faillite.bench.openloop``),
``closed`` one request in flight per app, back to back (``faillite.bench.load``: a stress load that
saturates the box, so its MTTRs are mostly queueing). CPU utilisation (busy share of all cores,
0-1) is measured over the policy's measured window -- load start to load stop, less each restore
(an agent process starting up is not the workload) -- and, as ``steady``, over the stretches
without probes or failures (what the workload alone costs): of the whole box (``cpu_utilisation``,
which counts whatever else runs on the machine) and of the benchmark's own processes (this one,
the controller, the agents: ``cpu_utilisation_own``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faillite.bench.cluster.harness import app_inputs, cluster_processes
from faillite.bench.cputime import BoxSample, cpu_seconds, sample_box
from faillite.bench.failover.inject import KINDS, EventCursor, Injection, inject
from faillite.bench.failover.scenarios import Scenario
from faillite.bench.load import LoadGenerator, RequestRecord
from faillite.bench.openloop import OpenLoopLoad
from faillite.client.failover import Client
from faillite.controller.planning import plan_from_json
from faillite.launch.cluster import LocalCluster
from faillite.launch.http import http_json
from faillite.launch.process import LaunchError

__all__ = ["KINDS", "LOADS", "POLICIES", "Injection", "PolicyRun", "run_policy"]

#: (label, controller policy, progressive failover)
POLICIES: dict[str, tuple[str, bool]] = {
    "faillite": ("faillite", True),
    "faillite-shared": ("faillite-shared", True),
    "faillite-no-progressive": ("faillite", False),
    "hetero-warm-only": ("hetero-warm-only", True),
    "full-warm": ("full-warm", True),
    "full-cold": ("full-cold", True),
    "none": ("none", True),
}
LOADS = ("open", "closed")


@dataclass
class PolicyRun:
    label: str
    policy: str
    progressive: bool
    headroom: float
    deployed: bool
    load: str = "open"
    refusal: str | None = None
    error: str | None = None  # set when injections stopped early (the cluster did not recover)
    plan: list[dict[str, Any]] = field(default_factory=list)
    shared: list[dict[str, Any]] = field(default_factory=list)  # shared warm fallbacks (faillite-shared)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # the specs, with primary accuracy
    injections: list[Injection] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)  # the workload's
    dropped: int = 0  # open-loop arrivals refused by admission control
    offered_rps: float | None = None
    lag_p99_ms: float | None = None  # open loop: how late the generator sent (its own lag)
    window_s: float = 0.0  # the measured window (load start to stop)
    cpu_utilisation: float | None = None  # busy share of all cores over the window (0-1)
    cpu_utilisation_steady: float | None = None  # the same, outside failures and probes
    cpu_utilisation_own: float | None = None  # the benchmark's own processes, over the window
    cpu_utilisation_own_steady: float | None = None
    start_s: float = 0.0
    elapsed_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.records)

    @property
    def failed_requests_total(self) -> int:
        return sum(1 for r in self.records if not r.ok)


def run_policy(
    scenario: Scenario,
    label: str,
    *,
    headroom: float,
    failures: list[tuple[str, str]],
    workdir: Path,
    tick: Callable[[str], None] = lambda _s: None,
    load: str = "open",
    settle_timeout_s: float = 20.0,
    steady_s: float = 2.0,
) -> PolicyRun:
    """Start the cluster, inject each (node, kind) of ``failures`` in turn, stop it.

    ``tick`` is called after each injection (and once per injection when the plan is refused)."""
    if load not in LOADS:
        raise ValueError(f"load must be one of {', '.join(LOADS)} (got {load!r})")
    policy, progressive = POLICIES[label]
    run = PolicyRun(label, policy, progressive, headroom, deployed=False, load=load)
    config = scenario.config(policy, headroom=headroom, progressive=progressive)
    cluster = LocalCluster(config, workdir, say=lambda _m: None, memory_margin=scenario.memory_margin)
    t0 = time.monotonic()
    try:
        try:
            cluster.start(timeout=150)
        except LaunchError as exc:
            # A refused plan (422), or a deployment that never settled: recorded, not fatal.
            refused = "HTTP 422" in str(exc)
            run.refusal = str(exc).split("failed (HTTP 422): ", 1)[-1] if refused else f"not deployed: {exc}"
            for _ in failures:
                tick(f"{label}: {'plan refused' if refused else 'not deployed'}")
            return run
        run.deployed = True
        run.start_s = round(time.monotonic() - t0, 2)
        planned = http_json("GET", f"{cluster.controller_url}/v1/plan")[1]
        run.plan, run.shared = planned["plan"], planned.get("shared") or []
        for a in cluster.apps():
            run.apps[a["name"]] = {**a["spec"], "accuracy": a["accuracy"], "variant": a["variant"]}
        asyncio.run(_inject_all(cluster, run, failures, tick, settle_timeout_s, steady_s))
    finally:
        cluster.stop()
        run.elapsed_s = round(time.monotonic() - t0, 2)
    return run


async def _inject_all(
    cluster: LocalCluster,
    run: PolicyRun,
    failures: list[tuple[str, str]],
    tick: Callable[[str], None],
    settle_timeout_s: float,
    steady_s: float,
) -> None:
    inputs = app_inputs(cluster)
    cursor = EventCursor(cluster.controller_url)
    async with Client(cluster.controller_url, token=cluster.config.token) as client:
        if run.load == "open":
            rates = {name: float(spec.get("rate") or 0.0) for name, spec in run.apps.items()}
            workload: OpenLoopLoad | LoadGenerator = OpenLoopLoad(client, inputs, rates, deadline=10.0)
            run.offered_rps = round(workload.offered, 2)
        else:
            workload = LoadGenerator(client, inputs, workers=1, deadline=10.0)

        def sample() -> _Cpu:
            pids = [os.getpid()] + [pid for _, pid in cluster_processes(cluster)]
            return _Cpu(sample_box(), {pid: cpu_seconds([pid]) for pid in pids})

        first, w0 = sample(), time.monotonic()
        workload.start()
        try:
            await asyncio.sleep(steady_s)
            for done, (node, kind) in enumerate(failures):
                try:
                    injection = await inject(
                        cluster, client, inputs, cursor, node, kind,
                        settle_timeout_s=settle_timeout_s, label=run.label, sample=sample,
                    )  # fmt: skip
                except LaunchError as exc:  # the cluster did not return to its plan: stop here
                    run.error = str(exc)
                    for _ in failures[done:]:
                        tick(f"{run.label}: stopped")
                    break
                run.injections.append(injection)
                tick(f"{run.label}: {kind} {node}")
            await asyncio.sleep(steady_s)
        finally:
            last = sample()
            await workload.stop()
            run.window_s = round(time.monotonic() - w0, 2)
    steady, failing = _segments(first, run.injections, last)
    run.cpu_utilisation, run.cpu_utilisation_steady = _box_share(steady + failing), _box_share(steady)
    run.cpu_utilisation_own, run.cpu_utilisation_own_steady = _own_share(steady + failing), _own_share(steady)
    run.records = list(workload.records)
    if isinstance(workload, OpenLoopLoad):
        run.dropped = sum(workload.dropped.values())
        lags = sorted(workload.lags)
        run.lag_p99_ms = round(lags[int(0.99 * (len(lags) - 1))] * 1000, 2) if lags else None


@dataclass(frozen=True)
class _Cpu:
    box: BoxSample
    own: dict[int, float]  # pid -> CPU seconds so far (0 for a process that was gone)


def _segments(
    first: _Cpu, injections: list[Injection], last: _Cpu
) -> tuple[list[tuple[_Cpu, _Cpu]], list[tuple[_Cpu, _Cpu]]]:
    """(steady stretches, failure stretches) of the measured window; restores are left out."""
    steady: list[tuple[_Cpu, _Cpu]] = []
    failing: list[tuple[_Cpu, _Cpu]] = []
    at = first
    for inj in injections:
        start, end, back = inj.samples
        steady.append((at, start))
        failing.append((start, end))
        at = back
    steady.append((at, last))
    return steady, failing


def _box_share(segments: list[tuple[_Cpu, _Cpu]]) -> float | None:
    busy = sum(b.box.busy - a.box.busy for a, b in segments)
    total = sum(b.box.total - a.box.total for a, b in segments)
    return round(busy / total, 4) if total > 0 else None


def _own_share(segments: list[tuple[_Cpu, _Cpu]]) -> float | None:
    """CPU seconds of the benchmark's processes over the segments' core-seconds. A process killed
    within a segment (the failed agent) loses that segment's share: a slight undercount."""
    used = sum(
        max(0.0, b.own[pid] - a.own[pid]) for a, b in segments for pid in a.own if b.own.get(pid, 0.0) > 0
    )
    total = sum(b.box.total - a.box.total for a, b in segments)
    return round(used / total, 4) if total > 0 else None


def plan_backups(run: PolicyRun, scenario: Scenario) -> tuple[int, int, int]:
    """(warm backup bytes held at all times, cold bytes reserved, shared warm fallback bytes held
    at all times) by the plan the cluster deployed."""
    warm = cold = 0
    for a in plan_from_json(run.plan):
        if a.backup is None:
            continue
        family = run.apps[a.app]["family"]
        size = scenario.memory_of(family, a.backup.variant)
        if a.backup.mode.value == "warm":
            warm += size
        else:
            cold += size
    shared = sum(scenario.memory_of(s["family"], s["variant"]) for s in run.shared)
    return warm, cold, shared
