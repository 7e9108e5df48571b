"""One injected failure: probes, the failure, the wait until every affected app settled, restore.

Probe streams (``faillite.bench.probe``) for every app the node serves start ``lead_s`` before the
signal; the failure instant is ``time.monotonic()`` right before it. Then, every ``poll_s``, the
controller's events (``GET /v1/events?since=ID``) and apps view are read until each affected app
has settled (``faillite.bench.failover.settle``) or ``settle_timeout_s`` passed; each app's probe
stops once it has. Controller events carry ``mono`` (CLOCK_MONOTONIC in the controller process),
the records ``time.monotonic()`` here: one clock for every process on the machine, no alignment
needed. After settling, the controller's plan and node states say which apps are protected again.
Then the node is restored (SIGKILL of what is left, agent restarted) and the cluster waited for
until every app is back on its primary with its warm backups loaded and no leftovers.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faillite.bench.failover.settle import Settled, settled_app
from faillite.bench.load import RequestRecord
from faillite.bench.probe import ProbeStreams
from faillite.client.failover import Client
from faillite.launch.cluster import LocalCluster
from faillite.launch.http import http_json
from faillite.launch.process import LaunchError

__all__ = ["KINDS", "EventCursor", "Injection", "inject", "protected_share", "wait_until"]

KINDS = {"SIGKILL": signal.SIGKILL, "SIGSTOP": signal.SIGSTOP}


@dataclass
class Injection:
    node: str
    kind: str
    failed_at: float  # time.monotonic() right before the signal
    until: float  # end of the observation: every affected app settled, or the timeout
    before: dict[str, dict[str, Any]]  # /v1/apps before the failure, by app
    after: dict[str, dict[str, Any]]  # /v1/apps once settled
    affected: list[str]
    probes: dict[str, list[RequestRecord]]
    settled: dict[str, Settled]
    events: list[dict[str, Any]]  # every controller event from just before the failure to ``until``
    protected_after: float | None  # share of all apps with a backup on a live node, after settling
    window: tuple[float, float] = (0.0, 0.0)  # probes' start -> cluster restored (not steady)
    restore_ms: float = 0.0
    # CPU samples (``sample()``'s) at the probes' start, at ``until`` and once restored: the
    # restore (an agent process starting) is left out of the policy's CPU utilisation
    samples: tuple[Any, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class EventCursor:
    """Reads the controller's event log forward (``GET /v1/events?since=ID``)."""

    def __init__(self, controller_url: str) -> None:
        self.url = controller_url.rstrip("/")
        self.last = 0

    def read(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            status, page = http_json("GET", f"{self.url}/v1/events?since={self.last}&limit=5000")
            if status != 200 or not page:
                return out
            out += page
            self.last = page[-1]["id"]
            if len(page) < 5000:
                return out


def protected_share(
    plan: list[Mapping[str, Any]],
    apps: list[Mapping[str, Any]],
    alive: set[str],
    shared: Sequence[Mapping[str, Any]] = (),
) -> tuple[float | None, list[str]]:
    """(share of all apps a next failure of the node serving them would not leave bare, the apps
    it would) from ``/v1/plan``'s entries and ``shared`` fallbacks, ``/v1/apps`` and the live
    nodes. Protected: a planned backup, or a shared warm fallback serving the app, on a live
    node other than the one serving it."""
    serving = {a["name"]: a.get("node") for a in apps}
    if not plan:
        return None, []
    fallbacks: dict[str, set[str]] = {}
    for sf in shared:
        for app in sf.get("apps", ()):
            fallbacks.setdefault(app, set()).add(sf["node"])

    def covered(a: Mapping[str, Any]) -> bool:
        here = serving.get(a["app"], a.get("primary_node"))
        nodes = set(fallbacks.get(a["app"], ()))
        if a.get("backup") is not None:
            nodes.add(a["backup"]["node"])
        return any(n in alive and n != here for n in nodes)

    bare = sorted(a["app"] for a in plan if not covered(a))
    return round(1 - len(bare) / len(plan), 4), bare


def restore_gap(
    apps: list[Mapping[str, Any]], nodes: list[Mapping[str, Any]], shared: list[Mapping[str, Any]]
) -> str | None:
    """What keeps the cluster from its plan (None: nothing): an app not on its primary, a warm
    backup or a shared fallback not loaded, a leftover of the last failover still loaded (it would
    eat the memory the next failure's cold backups were promised). As ``cluster_views.restored``,
    plus the plan's shared warm fallbacks (faillite-shared), which are wanted, not leftovers."""
    alive = {n["id"]: set(n["loaded"]) for n in nodes if n["state"] == "alive"}
    wanted: dict[str, set[str]] = {}
    gaps = []
    for a in apps:
        if a["state"] != "primary":
            gaps.append(f"{a['name']} is {a['state']}")
        wanted.setdefault(a["node"], set()).add(a["variant"])
        b = a["backup"]
        if b is not None and b["mode"] == "warm":
            wanted.setdefault(b["node"], set()).add(b["variant"])
            if b["variant"] not in alive.get(b["node"], set()):
                gaps.append(f"{a['name']}'s warm backup not loaded on {b['node']}")
    for sf in shared:
        wanted.setdefault(sf["node"], set()).add(sf["variant"])
    for node, loaded in sorted(alive.items()):
        extra = sorted(loaded - wanted.get(node, set()))
        if extra:
            gaps.append(f"{node} still holds {', '.join(extra)}")
    return "; ".join(gaps[:6]) or None


async def wait_until(condition: Any, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


async def inject(
    cluster: LocalCluster,
    client: Client,
    inputs: Mapping[str, Mapping[str, np.ndarray]],
    cursor: EventCursor,
    node: str,
    kind: str,
    *,
    lead_s: float = 0.2,
    settle_timeout_s: float = 20.0,
    poll_s: float = 0.05,
    quiet_s: float = 6.0,
    label: str = "",
    sample: Callable[[], Any] = lambda: None,
) -> Injection:
    before = {a["name"]: a for a in await asyncio.to_thread(cluster.apps)}
    affected = sorted(n for n, a in before.items() if a["node"] == node)
    events = await asyncio.to_thread(cursor.read)  # moves the cursor to now
    events.clear()
    probes = ProbeStreams(client, {a: inputs[a] for a in affected}, deadline=5.0)
    cpu_start, probe_start = sample(), time.monotonic()
    probes.start()
    await asyncio.sleep(lead_s)
    failed_at = time.monotonic()
    cluster.kill_node(node, KINDS[kind])
    settled: dict[str, Settled] = {}
    deadline = failed_at + settle_timeout_s
    views: dict[str, dict[str, Any]] = {}
    while len(settled) < len(affected) and time.monotonic() < deadline:
        await asyncio.sleep(poll_s)
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
                failed_node=node,
                failed_at=failed_at,
                now=now,
                quiet_s=quiet_s,
            )
            if s is not None:
                settled[app] = s
                probes.stop_app(app)
    cpu_until, end = sample(), time.monotonic()
    for app in affected:
        if app not in settled:
            settled[app] = Settled(app, "timeout", end, None, None, None)
    await probes.stop(timeout=2.0)
    events += await asyncio.to_thread(cursor.read)
    after = {a["name"]: a for a in await asyncio.to_thread(cluster.apps)}
    plan_doc = (await asyncio.to_thread(http_json, "GET", f"{cluster.controller_url}/v1/plan"))[1]
    alive = {n["id"] for n in await asyncio.to_thread(cluster.nodes) if n["state"] == "alive"}
    share, bare = protected_share(plan_doc["plan"], list(after.values()), alive, plan_doc.get("shared") or [])
    restart_at = time.monotonic()
    if kind != "SIGKILL":
        cluster.kill_node(node, signal.SIGKILL)  # a hung process is ended before its restart
    await asyncio.to_thread(cluster.restart_node, node)
    gap: list[str | None] = ["not checked"]

    def restored() -> bool:
        shared = http_json("GET", f"{cluster.controller_url}/v1/plan")[1].get("shared") or []
        gap[0] = restore_gap(cluster.apps(), cluster.nodes(), shared)
        return gap[0] is None

    if not await wait_until(restored, 90, step=0.1):
        raise LaunchError(
            f"{label}: the cluster did not return to its plan after restarting {node}: {gap[0]}"
        )
    cpu_back, back = sample(), time.monotonic()
    return Injection(
        node=node,
        kind=kind,
        failed_at=failed_at,
        until=end,
        before=before,
        after=after,
        affected=affected,
        probes={a: list(r) for a, r in probes.records.items()},
        settled=settled,
        events=[e for e in events if e.get("mono", 0.0) <= end],
        protected_after=share,
        window=(probe_start, back),
        restore_ms=round((back - restart_at) * 1000, 1),
        samples=(cpu_start, cpu_until, cpu_back),
        extra={"unprotected_after": bare},
    )
