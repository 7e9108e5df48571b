"""``faillite bench warm``'s failure trials: pick the node, fail it, measure each affected app's
MTTR from the load's own records and the controller's ``node_dead`` event, then restart the
node and wait until the cluster is back on its plan."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from faillite.bench.cluster.harness import BoxMeter, EventWatch, poll, until
from faillite.bench.cluster.mttr import app_outcome, round_ms
from faillite.bench.cluster.paced import LoadBase
from faillite.bench.cluster_views import restored
from faillite.launch.cluster import LocalCluster

__all__ = ["KINDS", "pick_victim", "trial"]

KINDS = {"SIGKILL": signal.SIGKILL, "SIGSTOP": signal.SIGSTOP}


def pick_victim(apps: dict[str, dict[str, Any]], nodes: list[str], trial: int) -> str:
    """The node serving the most warm-backed apps; ties rotate with the trial."""

    def warm_on(node: str) -> int:
        return sum(
            1 for x in apps.values() if x["node"] == node and (x["backup"] or {}).get("mode") == "warm"
        )

    best = max(warm_on(n) for n in nodes)
    tied = [n for n in nodes if warm_on(n) == best]
    return tied[trial % len(tied)]


async def trial(
    cluster: LocalCluster,
    load: LoadBase,
    watch: EventWatch,
    number: int,
    kind: str,
    observe_s: float,
) -> dict[str, Any]:
    """Trial ``number`` of failure ``kind`` (a key of ``KINDS``); its record for the report."""
    if not await _restore_wait(cluster, load):
        raise RuntimeError("the cluster did not return to its plan (every app on its primary, protected)")
    before = {x["name"]: x for x in await asyncio.to_thread(cluster.apps)}
    victim = pick_victim(before, list(cluster.agents), number)
    affected = sorted(n for n, x in before.items() if x["node"] == victim)
    pid = cluster.agents[victim].pid
    meter = BoxMeter().start()
    mark = len(load.records)
    failed_at = time.monotonic()
    os.kill(pid, KINDS[kind])

    recovered: set[str] = set()
    cursor = mark

    def done() -> bool:  # every affected app answered elsewhere, the node declared dead, no leftovers
        nonlocal cursor
        fresh, cursor = load.records[cursor:], len(load.records)
        recovered.update(r.app for r in fresh if r.ok and r.node != victim and r.app in affected)
        if len(recovered) < len(affected):
            return False
        if not any(e.get("node") == victim for _, e in watch.of_kind("node_dead", failed_at)):
            return False
        return all((load.oldest_in_flight(app) or failed_at + 1) > failed_at for app in affected)

    await poll(done, observe_s)
    until = time.monotonic()
    box = meter.stop()
    records = [*load.records[mark:], *load.unanswered()]
    outcomes = [
        app_outcome(records, app=app, failed_node=victim, failed_at=failed_at, until=until)
        for app in affected
    ]
    dead = [(t, e) for t, e in watch.of_kind("node_dead", failed_at) if e.get("node") == victim]
    node_dead = (
        {
            "detection_ms": dead[0][1].get("detection_ms"),
            "seen_ms": round_ms((dead[0][0] - failed_at) * 1000),
            "reason": dead[0][1].get("reason"),
        }
        if dead
        else None
    )
    # restore: a hung process is ended first, then the node restarts and the plan comes back
    if kind != "SIGKILL":
        os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(cluster.restart_node, victim)
    return {
        "trial": number + 1,
        "kind": kind,
        "node": victim,
        "pid": pid,
        "observed_ms": round_ms((until - failed_at) * 1000),
        "node_dead": node_dead,
        "apps": [
            {
                "app": o.app,
                "mode": (before[o.app]["backup"] or {}).get("mode", "none"),
                "mttr_ms": o.mttr_ms,
                "from": "failure" if o.in_flight else "next request",
                "recovered_by": o.recovered_by,
                "touched": o.touched,
                "touched_failed": o.touched_failed,
                "touched_unanswered": o.touched_unanswered,
                "touched_max_ms": max(o.touched_latency_ms) if o.touched_latency_ms else None,
                "touched_latency_ms": list(o.touched_latency_ms),
            }
            for o in outcomes
        ],
        "box": box,
    }


async def _restore_wait(cluster: LocalCluster, load: LoadBase, timeout: float = 90.0) -> bool:
    """The plan restored and each app's latest answer from its primary (routes caught up)."""
    if not await until(lambda: restored(cluster), timeout, interval=0.05):
        return False
    primaries = {x["name"]: x["node"] for x in await asyncio.to_thread(cluster.apps)}

    def on_primary() -> bool:
        latest: dict[str, str | None] = {}
        for r in reversed(load.records[-50 * len(primaries) :]):
            if r.ok and r.app not in latest:
                latest[r.app] = r.node
        return all(latest.get(app) == node for app, node in primaries.items())

    return await poll(on_primary, 20)
