"""The real side of ``faillite sim validate``: one failure on a real local cluster, recorded.

``run_real(config, workdir)`` starts the cluster ``faillite up`` would (``LocalCluster``: the
controller, one agent per node, real ONNX models; profiles as ``faillite up`` writes them:
*estimated* from each variant's file size and MACs, never profiled), waits until every app is
served from its primary and protected, then injects one failure -- the nodes of ``failure``
(SIGKILL: crash; SIGSTOP: hang), by default the node serving the most apps (the demo's rule: then
the most cold-backed apps, then the highest id) -- and waits until every affected app has settled
(``faillite.bench.failover.settle``) and the controller has gone quiet (re-protection and climbs
done). Probe streams (``faillite.bench.probe``: one request in flight per affected app, back to
back) measure each app's MTTR; an open-loop workload runs beside them when apps have rates.

Recorded (``RealRun``): per affected app, recovered or not, the first answer's node/variant and
the settled one, the probe MTTR and the controller's ``app_recovered`` ``recovery_ms``, the phase
breakdown (``faillite.bench.phases``); the controller's plan before and after (placements and
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faillite.bench import phases
from faillite.bench.failover.inject import EventCursor
from faillite.bench.failover.settle import Settled, settled_app
from faillite.bench.load import RequestRecord
from faillite.bench.openloop import OpenLoopLoad
from faillite.bench.probe import ProbeStreams, probe_outcome
from faillite.client.failover import Client
from faillite.launch.cluster import LocalCluster
from faillite.launch.config import ClusterConfig
from faillite.launch.http import http_json
from faillite.profiler.format import VariantProfile, load_profiles
from faillite.zoo import digits

__all__ = ["KINDS", "RealApp", "RealRun", "default_victim", "run_real"]

#: failure kind -> signal (the simulator's FailureEvent kinds)
KINDS: dict[str, signal.Signals] = {"crash": signal.SIGKILL, "hang": signal.SIGSTOP}


@dataclass(frozen=True)
class RealApp:
    """What one affected app went through on the real cluster."""

    app: str
    mode: str  # the backup the plan had before the failure: warm / cold / none
    recovered: bool  # its probe got an answer from another node
    first_node: str | None
    first_variant: str | None
    settled_node: str | None
    settled_variant: str | None
    settled_by: str  # event / lost / quiet / unavailable / timeout (faillite.bench.failover.settle)
    mttr_ms: float | None  # probe: failure (or first probe after it) -> first answer elsewhere
    recovery_ms: float | None  # the controller's app_recovered (failure seen -> route switched)
    phases_ms: dict[str, float | None]  # faillite.bench.phases, on the probe and the events

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RealRun:
    config: ClusterConfig
    failed_nodes: tuple[str, ...]
    kind: str  # crash / hang
    profiles: tuple[VariantProfile, ...]  # what the controller planned with
    nodes: list[dict[str, Any]]  # GET /v1/nodes before the failure (budgets, loaded, used_bytes)
    plan_before: dict[str, Any]  # GET /v1/plan before the failure
    plan_after: dict[str, Any]  # ... once settled
    apps_after: dict[str, dict[str, Any]]  # GET /v1/apps once settled, by app
    apps: dict[str, RealApp]  # the affected apps
    events: list[dict[str, Any]]  # from the failure on; ``t_ms`` = mono - failure, in ms
    load_ms: dict[str, list[float]]  # variant -> agent-measured load times (every load seen)
    start_s: float = 0.0  # cluster start-up
    observe_s: float = 0.0  # failure -> settled and quiet
    timed_out: list[str] = field(default_factory=list)

    def measured_load_ms(self) -> dict[str, float]:
        """variant -> median measured load time (ms)."""
        return {v: round(statistics.median(ms), 3) for v, ms in sorted(self.load_ms.items()) if ms}

    def timings(self) -> dict[str, Any]:
        """What the controller and agents took after the failure, from the events (ms): the
        quantities the simulator's timing model has constants for (``SimTiming``)."""
        return measured_timings(self.events, self.failed_nodes)

    def mttr_mean_ms(self) -> float | None:
        values = [a.mttr_ms for a in self.apps.values() if a.mttr_ms is not None]
        return round(statistics.fmean(values), 3) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "failed_nodes": list(self.failed_nodes),
            "kind": self.kind,
            "start_s": self.start_s,
            "observe_s": self.observe_s,
            "mttr_mean_ms": self.mttr_mean_ms(),
            "apps": {a: r.to_json() for a, r in sorted(self.apps.items())},
            "plan_before": self.plan_before,
            "plan_after": self.plan_after,
            "nodes": self.nodes,
            "measured_load_ms": self.measured_load_ms(),
            "timings": self.timings(),
            "profiles": [p.model_dump() for p in self.profiles],
            "timed_out": self.timed_out,
            "events": self.events,
        }


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
    inputs = _inputs(cluster)
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
            settled = await _until_settled(
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
    plan_after = await asyncio.to_thread(_get, cluster, "/v1/plan")
    apps_after = {a["name"]: a for a in await asyncio.to_thread(cluster.apps)}
    records = [r for rs in probes.records.values() for r in rs]
    apps = _outcomes(affected, before, failed, failed_at, until, events, records, probes.records, settled)
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
        plan_before=plan_before,
        plan_after=plan_after,
        apps_after=apps_after,
        apps=apps,
        events=[
            {**{k: v for k, v in e.items() if k not in ("ts", "id")}, "t_ms": _ms(e["mono"] - failed_at)}
            for e in events
            if e.get("mono", -math.inf) >= failed_at
        ],
        load_ms=loads,
        start_s=start_s,
        observe_s=round(until - failed_at, 2),
        timed_out=sorted(a for a, s in settled.items() if s.by == "timeout"),
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
) -> dict[str, Settled]:
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
    return settled


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


def _outcomes(
    affected: list[str],
    before: Mapping[str, Mapping[str, Any]],
    failed: tuple[str, ...],
    failed_at: float,
    until: float,
    events: list[dict[str, Any]],
    records: list[RequestRecord],
    probes: Mapping[str, list[RequestRecord]],
    settled: Mapping[str, Settled],
) -> dict[str, RealApp]:
    modes = {a: ((before[a].get("backup") or {}).get("mode") or "none") for a in affected}
    out: dict[str, RealApp] = {}
    for app in affected:
        node = before[app]["node"]
        s = settled[app]
        po = probe_outcome(
            probes[app],
            app=app,
            failed_node=node,
            failed_at=failed_at,
            until=until,
            settled_variant=s.variant,
        )
        ph = phases.app_phases(
            app,
            phases.Failure(node, "crash", failed_at),
            events,
            records,
            until=until,
            mode=modes[app],
            final_variant=s.variant,
        )
        recovered_ev = next(
            (
                e
                for e in events
                if e["kind"] == "app_recovered" and e.get("app") == app and e["mono"] >= failed_at
            ),
            None,
        )
        out[app] = RealApp(
            app=app,
            mode=modes[app],
            recovered=po.mttr_ms is not None,
            first_node=po.first_node,
            first_variant=po.first_variant,
            settled_node=s.node,
            settled_variant=s.variant,
            settled_by=s.by,
            mttr_ms=po.mttr_ms,
            recovery_ms=None if recovered_ev is None else recovered_ev.get("recovery_ms"),
            phases_ms={k: None if v is None else round(v, 3) for k, v in ph.phases().items()},
        )
    return out


def _inputs(cluster: LocalCluster) -> dict[str, dict[str, np.ndarray]]:
    """One request's input per app (held-out digits; random images for stand-ins)."""
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


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
