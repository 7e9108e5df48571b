"""The real side of ``faillite sim validate``: one failure on a real local cluster, recorded.

``run_real(config, workdir)`` starts the cluster ``faillite up`` would (``LocalCluster``: the
controller, one agent per node, real ONNX models; profiles as ``faillite up`` writes them:
*estimated* from each variant's file size and MACs, never profiled), waits until every app is
served from its primary and protected, then injects one failure -- the nodes of ``failure``
(crash: SIGKILL; hang: SIGSTOP), by default the node serving the most apps (the demo's rule: then
the most cold-backed apps, then the highest id) -- and waits until every affected app has settled
(``faillite.bench.failover.settle``) and the controller has gone quiet (re-protection and climbs
done). Probe streams (``faillite.bench.probe``: one request in flight per affected app, back to
back) measure each app's MTTR; an open-loop workload runs beside them when apps have rates.

Recorded (``RealRun``): per affected app, the failover benchmark's own record of it
(``faillite.bench.failover.outcome.injection_apps``, the function the simulator's figures go
through too: recovered, probe MTTR, first and settled variant, the answers' steps, the phase
breakdown of ``faillite.bench.phases``) plus the controller's ``app_recovered`` ``recovery_ms``
and the settled node; the controller's plan before and after (placements and
shared fallbacks); the nodes as agents registered them (memory budgets, what they charge); the
events from the failure on (``mono`` made relative: ``t_ms`` after the failure); the profiles the
controller planned with; the load times the agents measured (``load_finished`` ``ms``).
Nothing here is mocked: the simulator is compared with what these processes did.
"""

from __future__ import annotations

import asyncio
import math
import signal
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faillite.bench.cluster.harness import app_inputs
from faillite.bench.failover.inject import EventCursor, Injection, protected_share
from faillite.bench.failover.outcome import injection_apps
from faillite.bench.failover.settle import Settled, settled_app
from faillite.bench.load import RequestRecord
from faillite.bench.openloop import OpenLoopLoad
from faillite.bench.probe import ProbeStreams
from faillite.client.failover import Client
from faillite.launch.cluster import LocalCluster
from faillite.launch.config import ClusterConfig
from faillite.launch.http import http_json
from faillite.profiler.format import VariantProfile, load_profiles

__all__ = ["KINDS", "RealRun", "default_victim", "run_real"]

#: failure kind -> signal (the simulator's FailureEvent kinds)
KINDS: dict[str, signal.Signals] = {"crash": signal.SIGKILL, "hang": signal.SIGSTOP}


@dataclass
class RealRun:
    config: ClusterConfig
    failed_nodes: tuple[str, ...]
    kind: str  # crash / hang
    profiles: tuple[VariantProfile, ...]  # what the controller planned with
    nodes: list[dict[str, Any]]  # GET /v1/nodes before the failure (budgets, loaded, used_bytes)
    # the order the agents registered in (recorded only: the controller plans in node id order)
    registered: list[str]
    plan_before: dict[str, Any]  # GET /v1/plan before the failure
    plan_after: dict[str, Any]  # ... once settled
    apps_after: dict[str, dict[str, Any]]  # GET /v1/apps once settled, by app
    # per affected app: the failover benchmark's own record (faillite.bench.failover.outcome.
    # injection_apps: recovered, mttr_ms, first/settled variant, steps, phases_ms...), plus the
    # controller's ``recovery_ms`` (its app_recovered event) and ``settled_node``
    apps: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]  # from the failure on; ``t_ms`` = mono - failure, in ms
    load_ms: dict[str, list[float]]  # variant -> agent-measured load times (every load seen)
    start_s: float = 0.0  # cluster start-up
    observe_s: float = 0.0  # failure -> settled and quiet
    timed_out: list[str] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list, repr=False)
    # the client's hedging counters per affected app (requests, hedges sent/won/refused): whether
    # the probes' requests to the failed node were hedged, which the probe records do not say
    hedging: dict[str, dict[str, int]] = field(default_factory=dict)

    def measured_load_ms(self) -> dict[str, float]:
        """variant -> median measured load time (ms)."""
        return {v: round(statistics.median(ms), 3) for v, ms in sorted(self.load_ms.items()) if ms}

    def mttr_mean_ms(self) -> float | None:
        values = [a["mttr_ms"] for a in self.apps.values() if a["mttr_ms"] is not None]
        return round(statistics.fmean(values), 3) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "failed_nodes": list(self.failed_nodes),
            "kind": self.kind,
            "start_s": self.start_s,
            "observe_s": self.observe_s,
            "mttr_mean_ms": self.mttr_mean_ms(),
            "apps": dict(sorted(self.apps.items())),
            "plan_before": self.plan_before,
            "plan_after": self.plan_after,
            "nodes": self.nodes,
            "registered": self.registered,
            "measured_load_ms": self.measured_load_ms(),
            "profiles": [p.model_dump() for p in self.profiles],
            "timed_out": self.timed_out,
            "hedging": self.hedging,
            "events": self.events,
        }


def default_victim(apps: Sequence[Mapping[str, Any]], nodes: Sequence[str]) -> str:
    """The node serving the most apps, then the most apps without a warm backup, then the highest
    id (the demo's rule). ``apps``: ``/v1/apps`` entries (or any with ``node`` and ``backup``)."""

    def weight(node: str) -> tuple[int, int, str]:
        mine = [a for a in apps if a.get("node") == node]
        cold = sum(1 for a in mine if (a.get("backup") or {}).get("mode") != "warm")
        return len(mine), cold, node

    return max(nodes, key=weight)


def run_real(
    config: ClusterConfig,
    workdir: Path,
    *,
    nodes: Sequence[str] | None = None,
    kind: str = "crash",
    start_timeout_s: float = 150.0,
    settle_timeout_s: float = 20.0,
    quiet_s: float = 6.0,
    calm_s: float = 1.0,
    steady_s: float = 0.5,
    say: Callable[[str], None] = lambda _m: None,
) -> RealRun:
    """Start the cluster, fail ``nodes`` (default: ``default_victim``) together, record, stop.

    ``quiet_s``: how long an app with no ``app_settled`` event must go unmentioned to count as
    settled; ``calm_s``: how long the controller must emit nothing (after every app settled)
    before its plan is read as final."""
    if kind not in KINDS:
        raise ValueError(f"failure kind must be one of {', '.join(KINDS)} (got {kind!r})")
    unknown = sorted(set(nodes or ()) - {n.id for n in config.nodes})
    if unknown:
        raise ValueError(f"no node {unknown[0]!r} in the cluster file")
    cluster = LocalCluster(config, workdir, say=say)
    t0 = time.monotonic()
    try:
        cluster.start(timeout=start_timeout_s)
        start_s = round(time.monotonic() - t0, 2)
        say(f"cluster up in {start_s:.1f} s")
        profiles = load_profiles(workdir / "profiles.json").variants
        return asyncio.run(
            _observe(
                cluster,
                tuple(profiles),
                nodes,
                kind,
                start_s=start_s,
                settle_timeout_s=settle_timeout_s,
                quiet_s=quiet_s,
                calm_s=calm_s,
                steady_s=steady_s,
                say=say,
            )
        )
    finally:
        cluster.stop()


def _get(cluster: LocalCluster, path: str) -> Any:
    status, body = http_json("GET", f"{cluster.controller_url}{path}")
    if status != 200:
        raise RuntimeError(f"GET {path} answered HTTP {status}")
    return body


async def _observe(
    cluster: LocalCluster,
    profiles: tuple[VariantProfile, ...],
    nodes: Sequence[str] | None,
    kind: str,
    *,
    start_s: float,
    settle_timeout_s: float,
    quiet_s: float,
    calm_s: float,
    steady_s: float,
    say: Callable[[str], None],
) -> RealRun:
    before = {a["name"]: a for a in await asyncio.to_thread(cluster.apps)}
    node_view = await asyncio.to_thread(cluster.nodes)
    plan_before = await asyncio.to_thread(_get, cluster, "/v1/plan")
    failed = (
        tuple(nodes)
        if nodes
        else (default_victim(list(before.values()), [n.id for n in cluster.config.nodes]),)
    )
    affected = sorted(n for n, a in before.items() if a["node"] in failed)
    inputs = app_inputs(cluster)
    cursor = EventCursor(cluster.controller_url)
    history = await asyncio.to_thread(cursor.read)  # deployment: its loads are measurements too
    events: list[dict[str, Any]] = []
    rates = {a.name: float(a.rate or 0.0) for a in cluster.config.apps}
    async with Client(cluster.controller_url, token=cluster.config.token) as client:
        workload = None
        if all(r > 0 for r in rates.values()):
            workload = OpenLoopLoad(client, inputs, rates, deadline=10.0)
            workload.start()
        probes = ProbeStreams(client, {a: inputs[a] for a in affected}, deadline=5.0)
        try:
            await asyncio.sleep(steady_s)
            probes.start()
            await asyncio.sleep(0.2)  # a probe request is in flight at the failure
            failed_at = time.monotonic()
            for node in failed:
                cluster.kill_node(node, KINDS[kind])
            say(f"{kind} {', '.join(failed)}: {len(affected)} apps affected ({', '.join(affected)})")
            settled, settled_until = await _until_settled(
                cluster,
                cursor,
                probes,
                events,
                {a: before[a]["node"] for a in affected},
                failed_at,
                settle_timeout_s,
                quiet_s,
            )
            await probes.stop(timeout=2.0)
            await _until_calm(cursor, events, calm_s, timeout=max(settle_timeout_s, 10.0))
            until = time.monotonic()
        finally:
            await probes.stop(timeout=2.0)
            if workload is not None:
                await workload.stop()
        hedging = {a: asdict(st) for a, st in client.stats.items() if a in affected}
    plan_after = await asyncio.to_thread(_get, cluster, "/v1/plan")
    apps_after = {a["name"]: a for a in await asyncio.to_thread(cluster.apps)}
    alive = {n["id"] for n in await asyncio.to_thread(cluster.nodes) if n["state"] == "alive"}
    injections = _injections(
        failed,
        kind,
        failed_at,
        settled_until,
        before,
        apps_after,
        plan_after,
        alive,
        events,
        probes.records,
        settled,
    )
    apps = _app_records(injections, [] if workload is None else list(workload.records), events)
    loads: dict[str, list[float]] = {}
    for e in [*history, *events]:
        if e["kind"] == "load_finished" and isinstance(e.get("ms"), int | float):
            loads.setdefault(e["variant"], []).append(float(e["ms"]))
    return RealRun(
        config=cluster.config,
        failed_nodes=failed,
        kind=kind,
        profiles=profiles,
        nodes=node_view,
        registered=list(dict.fromkeys(e["node"] for e in history if e["kind"] == "node_registered")),
        plan_before=plan_before,
        plan_after=plan_after,
        apps_after=apps_after,
        apps=apps,
        injections=injections,
        events=[
            {**{k: v for k, v in e.items() if k not in ("ts", "id")}, "t_ms": _ms(e["mono"] - failed_at)}
            for e in events
            if e.get("mono", -math.inf) >= failed_at
        ],
        load_ms=loads,
        start_s=start_s,
        observe_s=round(until - failed_at, 2),
        timed_out=sorted(a for a, s in settled.items() if s.by == "timeout"),
        hedging=hedging,
    )


async def _until_settled(
    cluster: LocalCluster,
    cursor: EventCursor,
    probes: ProbeStreams,
    events: list[dict[str, Any]],
    homes: Mapping[str, str],
    failed_at: float,
    timeout_s: float,
    quiet_s: float,
) -> tuple[dict[str, Settled], float]:
    """Poll events and the apps view until each affected app settled (or the timeout)."""
    settled: dict[str, Settled] = {}
    affected = sorted(homes)
    deadline = failed_at + timeout_s
    while len(settled) < len(affected) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        events += await asyncio.to_thread(cursor.read)
        views = {a["name"]: a for a in await asyncio.to_thread(cluster.apps)}
        now = time.monotonic()
        for app in affected:
            if app in settled:
                continue
            s = settled_app(
                app,
                events=events,
                view=views.get(app),
                probe=probes.records[app],
                failed_node=homes[app],
                failed_at=failed_at,
                now=now,
                quiet_s=quiet_s,
            )
            if s is not None:
                settled[app] = s
                probes.stop_app(app)
    end = time.monotonic()
    for app in affected:
        settled.setdefault(app, Settled(app, "timeout", end, None, None, None))
    return settled, end


async def _until_calm(
    cursor: EventCursor, events: list[dict[str, Any]], calm_s: float, timeout: float
) -> None:
    """Wait until the controller emits nothing for ``calm_s`` (re-protection loads, climbs)."""
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() < deadline:
        new = await asyncio.to_thread(cursor.read)
        now = time.monotonic()
        if new:
            events += new
            last = now
        elif now - last >= calm_s:
            return
        await asyncio.sleep(0.05)


def _injections(
    failed: tuple[str, ...],
    kind: str,
    failed_at: float,
    until: float,
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
    plan_after: Mapping[str, Any],
    alive: set[str],
    events: list[dict[str, Any]],
    probes: Mapping[str, list[RequestRecord]],
    settled: Mapping[str, Settled],
) -> list[Injection]:
    """The failover benchmark's record of the failure, one per failed node (as it injects them)."""
    share, bare = protected_share(
        plan_after.get("plan") or [], list(after.values()), alive, plan_after.get("shared") or []
    )
    out = []
    for node in failed:
        mine = sorted(a for a, v in before.items() if v["node"] == node)
        out.append(
            Injection(
                node=node,
                kind=kind,
                failed_at=failed_at,
                until=until,
                before={a: dict(v) for a, v in before.items()},
                after={a: dict(v) for a, v in after.items()},
                affected=mine,
                probes={a: list(probes[a]) for a in mine},
                settled={a: settled[a] for a in mine},
                events=[e for e in events if e.get("mono", 0.0) <= until],
                protected_after=share,
                extra={"unprotected_after": bare},
            )
        )
    return out


def _app_records(
    injections: list[Injection], workload: list[RequestRecord], events: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per affected app, ``injection_apps``' record plus the controller's recovery_ms and the node
    of the settled answer (the simulator's result is read through the same function)."""
    out: dict[str, dict[str, Any]] = {}
    for inj in injections:
        weights = {a: float(v["spec"].get("weight", 1.0)) for a, v in inj.before.items()}
        for rec in injection_apps(inj, workload, weights):
            app = rec["app"]
            recovered = next(
                (
                    e
                    for e in events
                    if e["kind"] == "app_recovered" and e.get("app") == app and e["mono"] >= inj.failed_at
                ),
                None,
            )
            out[app] = {
                **rec,
                "failed_node": inj.node,
                "settled_node": inj.settled[app].node,
                "recovery_ms": None if recovered is None else recovered.get("recovery_ms"),
            }
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
