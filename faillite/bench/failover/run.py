"""Run one policy's cluster through every injected failure, under closed-loop client load.

One cluster per (scenario, policy, headroom), reused for every injection: fail a node
(SIGKILL: a crash; SIGSTOP: a hang, seen only by heartbeat timeout), wait until every app it
served has failed over (or the observation window ends), compute each app's recovery from the
clients' own records (``faillite.bench.recovery``), then restore the node (SIGKILL what is
left, restart the agent) and wait until every app is back on its primary and protected.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faillite.bench.cluster_views import restored
from faillite.bench.failover.scenarios import Scenario
from faillite.bench.load import LoadGenerator
from faillite.bench.recovery import AppRecovery, recover_reports
from faillite.client.failover import Client
from faillite.controller.planning import plan_from_json
from faillite.launch.cluster import LocalCluster
from faillite.launch.http import http_json
from faillite.launch.process import LaunchError
from faillite.zoo import digits

__all__ = ["POLICIES", "Injection", "PolicyRun", "run_policy"]

#: (label, controller policy, progressive failover)
POLICIES: dict[str, tuple[str, bool]] = {
    "faillite": ("faillite", True),
    "faillite-no-progressive": ("faillite", False),
    "hetero-warm-only": ("hetero-warm-only", True),
    "full-warm": ("full-warm", True),
    "full-cold": ("full-cold", True),
    "none": ("none", True),
}
KINDS = {"SIGKILL": signal.SIGKILL, "SIGSTOP": signal.SIGSTOP}
_SETTLED = ("failed_over", "unavailable")


@dataclass
class Injection:
    node: str
    kind: str
    apps: list[AppRecovery]
    observe_ms: float  # failure -> end of the observation window
    restore_ms: float  # restart -> every app back on its primary and protected


@dataclass
class PolicyRun:
    label: str
    policy: str
    progressive: bool
    headroom: float
    deployed: bool
    refusal: str | None = None
    error: str | None = None  # set when injections stopped early (the cluster did not recover)
    plan: list[dict[str, Any]] = field(default_factory=list)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # the specs, with primary accuracy
    injections: list[Injection] = field(default_factory=list)
    requests: int = 0
    failed_requests_total: int = 0
    start_s: float = 0.0
    elapsed_s: float = 0.0


def _inputs(cluster: LocalCluster) -> dict[str, dict[str, np.ndarray]]:
    x, _ = digits.heldout_split()
    rng = np.random.default_rng(0)
    feeds = {}
    for app in cluster.config.apps:
        spec = cluster.manifests[app.family].signature.inputs[0]
        if app.family == "digits":
            feeds[app.name] = {spec.name: x[:1]}
        else:
            shape = tuple(1 if d < 0 else d for d in spec.shape)
            feeds[app.name] = {spec.name: rng.random(shape, dtype=np.float32)}
    return feeds


async def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def run_policy(
    scenario: Scenario,
    label: str,
    *,
    headroom: float,
    failures: list[tuple[str, str]],
    workdir: Path,
    tick: Callable[[str], None] = lambda _s: None,
    observe_s: float = 15.0,
    steady_s: float = 0.5,
) -> PolicyRun:
    """Start the cluster, inject each (node, kind) of ``failures`` in turn, stop it.

    ``tick`` is called after each injection (and once per injection when the plan is refused)."""
    policy, progressive = POLICIES[label]
    run = PolicyRun(label, policy, progressive, headroom, deployed=False)
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
        run.plan = http_json("GET", f"{cluster.controller_url}/v1/plan")[1]["plan"]
        for a in cluster.apps():
            run.apps[a["name"]] = {**a["spec"], "accuracy": a["accuracy"], "variant": a["variant"]}
        asyncio.run(_inject_all(cluster, run, failures, tick, observe_s, steady_s))
    finally:
        cluster.stop()
        run.elapsed_s = round(time.monotonic() - t0, 2)
    return run


async def _inject_all(
    cluster: LocalCluster,
    run: PolicyRun,
    failures: list[tuple[str, str]],
    tick: Callable[[str], None],
    observe_s: float,
    steady_s: float,
) -> None:
    async with Client(cluster.controller_url, token=cluster.config.token) as client:
        load = LoadGenerator(client, _inputs(cluster), workers=1, deadline=10.0)
        load.start()
        try:
            await asyncio.sleep(steady_s)
            for done, (node, kind) in enumerate(failures):
                try:
                    run.injections.append(await _inject(cluster, load, run, node, kind, observe_s))
                except LaunchError as exc:  # the cluster did not return to its plan: stop here
                    run.error = str(exc)
                    for _ in failures[done:]:
                        tick(f"{run.label}: stopped")
                    break
                tick(f"{run.label}: {kind} {node}")
        finally:
            await load.stop()
    run.requests = len(load.records)
    run.failed_requests_total = sum(1 for r in load.records if not r.ok)


async def _inject(
    cluster: LocalCluster, load: LoadGenerator, run: PolicyRun, node: str, kind: str, observe_s: float
) -> Injection:
    before = {a["name"]: a for a in await asyncio.to_thread(cluster.apps)}
    affected = sorted(n for n, a in before.items() if a["node"] == node)
    failed_at = time.monotonic()
    cluster.kill_node(node, KINDS[kind])

    def settled() -> bool:
        apps = {a["name"]: a for a in cluster.apps()}
        return all(apps[n]["state"] in _SETTLED for n in affected)

    await _until(settled, observe_s)
    left = max(0.5, observe_s - (time.monotonic() - failed_at))

    def served_final() -> bool:  # every failed-over app answered by the variant it settled on
        apps = {a["name"]: a for a in cluster.apps()}
        for n in affected:
            if apps[n]["state"] != "failed_over":
                continue
            if not any(
                r.app == n
                and r.ok
                and r.end > failed_at
                and r.node != node
                and r.variant == apps[n]["variant"]
                for r in reversed(load.records)
            ):
                return False
        return True

    await _until(served_final, left)
    await asyncio.sleep(0.1)
    until = time.monotonic()
    after = {a["name"]: a for a in await asyncio.to_thread(cluster.apps)}
    apps = recover_reports(
        load.records, affected, before, after, failed_node=node, failed_at=failed_at, until=until
    )
    observe_ms = (until - failed_at) * 1000
    restart_at = time.monotonic()
    if kind != "SIGKILL":
        cluster.kill_node(node, signal.SIGKILL)  # a hung process is ended before its restart
    await asyncio.to_thread(cluster.restart_node, node)
    if not await _until(lambda: restored(cluster), 90):
        raise LaunchError(f"{run.label}: the cluster did not return to its plan after restarting {node}")
    return Injection(node, kind, apps, round(observe_ms, 1), round((time.monotonic() - restart_at) * 1000, 1))


def plan_backups(run: PolicyRun, scenario: Scenario) -> tuple[int, int]:
    """(warm bytes held at all times, cold bytes reserved) by the plan the cluster deployed."""
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
    return warm, cold
