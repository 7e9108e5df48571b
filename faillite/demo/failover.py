"""The failover demo: a local cluster under load, a node killed, the recovery table, failback.

1. Start a controller, four agents and a gateway on loopback; deploy ten apps (digits plus
   stand-ins of published models); wait until every app is served and protected.
2. Run one closed-loop client per app through the failover client library.
3. SIGKILL the node serving the most apps; watch every affected app recover (warm backups at
   once, cold ones through progressive failover) from the clients' own records.
4. Restart the node and watch the apps fail back to it, counting failed requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from faillite.bench.cluster.harness import app_inputs
from faillite.bench.load import LoadGenerator
from faillite.bench.recovery import AppRecovery, by_mode, recover_reports, summarize
from faillite.bench.stats import percentile
from faillite.client.failover import Client
from faillite.launch.cluster import LocalCluster
from faillite.launch.config import ClusterConfig, load_cluster_config

__all__ = ["demo_config", "run_failover_demo"]


def demo_config() -> ClusterConfig:
    path = Path(str(resources.files("faillite.demo").joinpath("cluster.yaml")))
    return load_cluster_config(path)


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _scenario(cluster: LocalCluster, say: Callable[[str], None], steady_s: float) -> dict[str, Any]:
    apps_before = {a["name"]: a for a in cluster.apps()}

    def weight(node: str) -> tuple[int, int, str]:  # most apps, then most cold ones: show both paths
        mine = [a for a in apps_before.values() if a["node"] == node]
        cold = sum(1 for a in mine if (a["backup"] or {}).get("mode") != "warm")
        return len(mine), cold, node

    victim = max((n.id for n in cluster.config.nodes), key=weight)
    affected = sorted(name for name, a in apps_before.items() if a["node"] == victim)
    async with Client(cluster.controller_url, token=cluster.config.token) as client:
        load = LoadGenerator(client, app_inputs(cluster), workers=1, deadline=10.0)
        load.start()
        try:
            return await _observe(cluster, load, say, steady_s, victim, affected, apps_before)
        finally:
            await load.stop()


async def _observe(
    cluster: LocalCluster,
    load: LoadGenerator,
    say: Callable[[str], None],
    steady_s: float,
    victim: str,
    affected: list[str],
    apps_before: dict[str, Any],
) -> dict[str, Any]:
    await asyncio.sleep(steady_s)
    steady = [(r.end - r.start) * 1000 for r in load.records if r.ok]
    latency = {"p50_ms": percentile(steady, 50), "p99_ms": percentile(steady, 99)}
    say(
        f"steady load: {len(steady)} requests answered in {steady_s:.0f} s by {len(apps_before)} clients; "
        f"one request takes {latency['p50_ms']:.1f} ms at p50, {latency['p99_ms']:.1f} ms at p99 here"
    )
    pid = cluster.agents[victim].pid
    failed_at = time.monotonic()
    cluster.kill_node(victim, signal.SIGKILL)
    say(f"\nSIGKILL {victim} (pid {pid}), which serves {len(affected)} apps: {', '.join(affected)}")

    def recovered() -> bool:
        apps = {a["name"]: a for a in cluster.apps()}
        return all(apps[n]["state"] in ("failed_over", "unavailable") for n in affected)

    def answered() -> bool:  # the clients' view: each affected app answered from another node
        return all(
            any(r.ok and r.app == n and r.node != victim and r.end > failed_at for r in list(load.records))
            for n in affected
        )

    await _until(recovered, 30, "every affected app to finish failing over")
    # The controller's verdict can run ahead of a client's first answer (a request still waiting
    # out its attempt): wait for the clients too, bounded, so a slow one is reported, not missed.
    with contextlib.suppress(TimeoutError):
        await _until(answered, 10, "every affected app to be answered from another node")
    await asyncio.sleep(0.5)  # let every client see the final variant
    until = time.monotonic()
    apps_after = {a["name"]: a for a in cluster.apps()}
    report = recover_reports(
        load.records, affected, apps_before, apps_after, failed_node=victim, failed_at=failed_at, until=until
    )
    say(_table(report))
    summary = summarize(report)
    say(_summary_line(summary, by_mode(report)))

    say(f"\nrestarting {victim} ...")
    restart_at = time.monotonic()
    await asyncio.to_thread(cluster.restart_node, victim)
    await _until(cluster.deployed, 60, "failback: every app back on its primary, protected")
    failback_ms = (time.monotonic() - restart_at) * 1000
    await asyncio.sleep(0.3)
    await load.stop()
    during = [r for r in load.records if r.end >= restart_at]
    failed_failback = sum(1 for r in during if not r.ok)
    back = {a["name"]: a for a in cluster.apps()}
    say(
        f"{victim} rejoined; apps failed back to their primaries in {failback_ms:.0f} ms (including the "
        f"agent's start-up), {failed_failback} failed requests of {len(during)} during failback; "
        "now serving: " + ", ".join(f"{n}@{back[n]['node']}" for n in affected)
    )
    total = len(load.records)
    say(f"{total} requests in all, {sum(1 for r in load.records if not r.ok)} failed")
    return {
        "failures": [{"node": victim, "kind": "SIGKILL", "apps": [_app_json(a) for a in report]}],
        "summary": summary,
        "by_mode": by_mode(report),
        "failback": {
            "node": victim,
            "ms": round(failback_ms, 1),
            "failed_requests": failed_failback,
            "requests": len(during),
        },
        "requests": total,
        "steady_latency": latency,  # an MTTR cannot be shorter than one request
    }


def _app_json(a: AppRecovery) -> dict[str, Any]:
    return {
        "app": a.app,
        "critical": a.critical,
        "mode": a.mode,
        "mttr_ms": a.mttr_ms,
        "full_recovery_ms": a.full_recovery_ms,
        "failed_requests": a.failed_requests,
        "steps": [{"variant": s.variant, "node": s.node, "at_ms": s.at_ms} for s in a.steps],
        "accuracy_before": a.accuracy_before,
        "accuracy_after": a.accuracy_after,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _ms(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def _table(report: list[AppRecovery]) -> str:
    lines = [
        f"{'app':<15} {'crit':<4} {'mode':<5} {'MTTR ms':>8} {'full ms':>8} {'failed':>6}  "
        f"{'accuracy before -> after':<26} path (variant@node at ms)"
    ]
    for a in sorted(report, key=lambda a: (a.mode != "warm", a.app)):
        path = " -> ".join(f"{s.variant}@{s.node} {s.at_ms:.0f}" for s in a.steps) or "-"
        lines.append(
            f"{a.app:<15} {'yes' if a.critical else 'no':<4} {a.mode:<5} {_ms(a.mttr_ms):>8} "
            f"{_ms(a.full_recovery_ms):>8} {a.failed_requests:>6}  "
            f"{_pct(a.accuracy_before):>8} -> {_pct(a.accuracy_after):<14} {path}"
        )
    return "\n".join(lines)


def _summary_line(summary: dict[str, Any], modes: dict[str, Any]) -> str:
    parts = [
        f"recovered {summary['recovered']}/{summary['affected']} apps; "
        f"MTTR mean {_ms(summary['mttr_mean_ms'])} ms, "
        f"p50 {_ms(summary['mttr_p50_ms'])} ms, p99 {_ms(summary['mttr_p99_ms'])} ms; "
        f"failed requests {summary['failed_requests']}"
    ]
    for mode, s in modes.items():
        parts.append(
            f"  {mode}: {s['recovered']}/{s['affected']} apps, MTTR mean {_ms(s['mttr_mean_ms'])} ms"
        )
    parts.append("(accuracies: digits measured on a held-out split; stand-ins PUBLISHED ImageNet top-1)")
    return "\n".join(parts)


def run_failover_demo(
    *,
    as_json: bool = False,
    steady_s: float = 2.0,
    workdir: Path | None = None,
    say: Callable[[str], None] = print,
) -> int:
    out = (lambda _msg: None) if as_json else say
    config = demo_config()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faillite-demo-") as tmp:
        cluster = LocalCluster(config, workdir or Path(tmp), say=out)
        try:
            out(f"faillite demo: {len(config.nodes)} nodes, {len(config.apps)} apps, on this machine")
            cluster.start()
            out(f"controller {cluster.controller_url}   gateway {cluster.gateway_url}")
            for node in cluster.nodes():
                out(
                    f"  {node['id']:<8} {node['url']:<26} pid {node['pid']:<7}"
                    f" loaded: {', '.join(node['loaded'])}"
                )
            out(_plan_table(cluster))
            result = asyncio.run(_scenario(cluster, out, steady_s))
        finally:
            cluster.stop()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    if as_json:
        say(json.dumps(result))
    else:
        say(f"demo finished in {result['elapsed_s']} s")
    ok = result["summary"]["recovered"] == result["summary"]["affected"]
    return 0 if ok else 1


def _plan_table(cluster: LocalCluster) -> str:
    lines = ["\nplan: app -> primary (variant, accuracy) | backup (node, variant, mode)"]
    for a in cluster.apps():
        b = a["backup"]
        backup = "unprotected" if b is None else f"{b['node']} {b['variant']} ({b['mode']})"
        lines.append(
            f"  {a['name']:<15} {a['node']:<7} {a['variant']:<32} {_pct(a['accuracy']):>7} | {backup}"
        )
    return "\n".join(lines)
