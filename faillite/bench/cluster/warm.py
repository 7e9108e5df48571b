"""``faillite bench warm``: paced-load latency, then warm-backup MTTR after a node fails.

One cluster (default 4 nodes, 8 critical digits apps, so every app has a warm backup). Each app
sends one request every ``--period-ms`` on an open-loop schedule, through ``faillite.client.Client``
in this process (``--via client``) or through the gateway (``--via gateway``). First a steady
window (latency p50/p99, the box's CPU and load). Then ``--trials`` rounds of failures, each kind
of ``--kinds`` per round: the node serving the most warm-backed apps gets SIGKILL (a crash) or
SIGSTOP (a hang); the instant is ``time.monotonic()`` right before ``os.kill``. Per affected app
the MTTR is computed from the load's own records (``faillite.bench.cluster.mttr``); the
controller's ``node_dead`` event gives its detection time (``detection_ms``) and, from the
event stream, when this process saw it. Then the node is killed (if stopped), restarted, and
the cluster restored to its plan before the next failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from faillite.bench.cluster.harness import (
    BoxMeter,
    EventWatch,
    ProcessMeter,
    Progress,
    bench_config,
    cluster_processes,
    restored,
    running_cluster,
)
from faillite.bench.cluster.idle import _code_args, code_runs, run_dir, separate_load
from faillite.bench.cluster.loadgen import RemoteLoad, paced_load
from faillite.bench.cluster.mttr import AppOutcome, app_outcome, latency_stats, summarize_outcomes, top_errors
from faillite.bench.cluster.paced import PacedLoad
from faillite.bench.recovery import percentile
from faillite.launch.cluster import LocalCluster
from faillite.launch.process import LaunchError

__all__ = ["TARGETS", "add_parser", "measure_warm", "run"]

KINDS = {"SIGKILL": signal.SIGKILL, "SIGSTOP": signal.SIGSTOP}
TARGETS = {"steady_p50_ms": 2.0, "SIGKILL_mttr_mean_ms": 2.0, "SIGSTOP_mttr_mean_ms": 25.0, "dead_ms": 150.0}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "warm", help="paced-load latency and warm-backup MTTR after SIGKILL/SIGSTOP of a node"
    )
    parser.add_argument("--nodes", type=int, default=4, help="agents (default %(default)s)")
    parser.add_argument("--apps", type=int, default=8, help="critical digits apps (default %(default)s)")
    parser.add_argument("--period-ms", type=float, default=5.0, help="each app's request period (default 5)")
    parser.add_argument("--steady", type=float, default=5.0, help="steady-load window, s (default 5)")
    parser.add_argument("--trials", type=int, default=5, help="failures of each kind (default 5)")
    parser.add_argument(
        "--kinds", default="SIGKILL,SIGSTOP", help="failure kinds, comma-separated (default %(default)s)"
    )
    parser.add_argument("--via", choices=("client", "gateway"), default="client", help="request path")
    parser.add_argument("--observe", type=float, default=3.0, help="longest wait for recovery, s (default 3)")
    parser.add_argument("--deadline", type=float, default=5.0, help="per-request deadline, s (default 5)")
    _code_args(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faillite.errors import CliError

    kinds = [k.strip().upper() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise CliError(f"--kinds: expected SIGKILL and/or SIGSTOP, got {args.kinds!r}")
    if args.nodes < 2 or args.apps < 1 or args.trials < 0 or args.rounds < 1:
        raise CliError("--nodes must be at least 2, --apps and --rounds positive, --trials not negative")
    if args.period_ms <= 0 or args.steady <= 0 or args.observe <= 0 or args.deadline <= 0:
        raise CliError("--period-ms, --steady, --observe and --deadline must be positive")
    say = Progress()
    runs = []
    try:
        for i, (label, code) in enumerate(code_runs(args)):
            with run_dir(args.workdir, f"{i + 1}-{label}", "faillite-warm-") as tmp:
                result = measure_warm(
                    nodes=args.nodes,
                    apps=args.apps,
                    via=args.via,
                    period_s=args.period_ms / 1000,
                    steady_s=args.steady,
                    trials=args.trials,
                    kinds=kinds,
                    observe_s=args.observe,
                    deadline_s=args.deadline,
                    workdir=tmp,
                    code=code,
                    say=say,
                    separate=separate_load(args),
                )
            runs.append({"code": label, **result})
    except LaunchError as exc:  # a process did not start: say so, no traceback
        raise CliError(f"the benchmark's cluster failed: {exc}", exit_code=1) from exc
    doc = {"command": "faillite " + shlex.join(sys.argv[1:]), "targets": TARGETS, "runs": runs}
    print(json.dumps(doc) if args.json else table(doc))
    return 0 if all(r.get("error") is None for r in runs) else 1


def measure_warm(
    *,
    nodes: int,
    apps: int,
    via: str,
    period_s: float,
    steady_s: float,
    trials: int,
    kinds: list[str],
    observe_s: float,
    deadline_s: float,
    workdir: Path,
    code: Path | None,
    say: Any,
    separate: bool = False,
) -> dict[str, Any]:
    config = bench_config(nodes, apps, gateway=True)
    with running_cluster(config, workdir, code, say) as cluster:
        body = asyncio.run(
            _measure(cluster, via, period_s, steady_s, trials, kinds, observe_s, deadline_s, separate, say)
        )
    return {
        "via": via,
        "load_generator": "own process" if separate else "in the benchmark process",
        "nodes": nodes,
        "apps": apps,
        "period_ms": period_s * 1000,
        **body,
    }


async def _measure(
    cluster: LocalCluster,
    via: str,
    period_s: float,
    steady_s: float,
    trials: int,
    kinds: list[str],
    observe_s: float,
    deadline_s: float,
    separate: bool,
    say: Any,
) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        watch = await asyncio.to_thread(EventWatch.from_now, session, cluster)
        watch.start()
        try:
            async with paced_load(
                cluster, period_s, via=via, deadline_s=deadline_s, separate=separate
            ) as load:
                return await _phases(cluster, load, watch, steady_s, trials, kinds, observe_s, say)
        finally:
            await watch.stop()


async def _poll(condition: Any, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def _phases(
    cluster: LocalCluster,
    load: PacedLoad | RemoteLoad,
    watch: EventWatch,
    steady_s: float,
    trials: int,
    kinds: list[str],
    observe_s: float,
    say: Any,
) -> dict[str, Any]:
    await asyncio.sleep(1.0)  # warm-up: connections opened, first requests' costs paid
    say(
        f"steady load: {len(load.apps)} apps, one request every {load.period_s * 1000:g} ms each, "
        f"{steady_s:g} s"
    )
    meter = BoxMeter().start()
    generator = [("load generator", load.pid)] if load.pid is not None else []
    procs = ProcessMeter([*cluster_processes(cluster), ("bench", os.getpid()), *generator]).start()
    a = time.monotonic()
    await asyncio.sleep(steady_s)
    b = time.monotonic()
    box = meter.stop()
    shares = procs.stop()
    window = [r for r in load.records if a <= r.start <= b]
    steady = {
        **latency_stats([r.latency_ms for r in window if r.ok and r.latency_ms is not None]),
        "failed": sum(1 for r in window if not r.ok),
        "send_lag_p99_ms": _r(percentile([(r.start - r.due) * 1000 for r in window], 99)),
        "box": box,
        "process_cpu_percent": shares,
    }
    say(
        f"steady: p50 {steady['p50_ms']} ms, p99 {steady['p99_ms']} ms over {steady['requests']} requests; "
        f"box {box['cpu_percent']} % busy, load {box['loadavg'][0]:.2f}"
    )
    out: dict[str, Any] = {"steady": steady, "trials": [], "error": None}
    for trial in range(trials):
        for kind in kinds:
            try:
                record = await _trial(cluster, load, watch, trial, kind, observe_s)
            except RuntimeError as exc:
                out["error"] = str(exc)
                say(f"stopping: {exc}")
                break
            out["trials"].append(record)
            say(_trial_line(record))
        if out["error"]:
            break
    out["summary"] = summary(out["trials"], kinds)
    out["requests"] = len(load.records)
    out["failed_requests"] = sum(1 for r in load.records if not r.ok)
    out["skipped"] = load.skipped
    out["errors"] = top_errors(load.records)
    return out


def _victim(apps: dict[str, dict[str, Any]], nodes: list[str], trial: int) -> str:
    """The node serving the most warm-backed apps; ties rotate with the trial."""

    def warm_on(node: str) -> int:
        return sum(
            1 for x in apps.values() if x["node"] == node and (x["backup"] or {}).get("mode") == "warm"
        )

    best = max(warm_on(n) for n in nodes)
    tied = [n for n in nodes if warm_on(n) == best]
    return tied[trial % len(tied)]


async def _trial(
    cluster: LocalCluster,
    load: PacedLoad | RemoteLoad,
    watch: EventWatch,
    trial: int,
    kind: str,
    observe_s: float,
) -> dict[str, Any]:
    if not await _restore_wait(cluster, load):
        raise RuntimeError("the cluster did not return to its plan (every app on its primary, protected)")
    before = {x["name"]: x for x in await asyncio.to_thread(cluster.apps)}
    victim = _victim(before, list(cluster.agents), trial)
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

    await _poll(done, observe_s)
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
            "seen_ms": _r((dead[0][0] - failed_at) * 1000),
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
        "trial": trial + 1,
        "kind": kind,
        "node": victim,
        "pid": pid,
        "observed_ms": _r((until - failed_at) * 1000),
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


async def _restore_wait(cluster: LocalCluster, load: PacedLoad | RemoteLoad, timeout: float = 90.0) -> bool:
    """The plan restored and each app's latest answer from its primary (routes caught up)."""
    if not await _until_thread(lambda: restored(cluster), timeout):
        return False
    primaries = {x["name"]: x["node"] for x in await asyncio.to_thread(cluster.apps)}

    def on_primary() -> bool:
        latest: dict[str, str | None] = {}
        for r in reversed(load.records[-50 * len(primaries) :]):
            if r.ok and r.app not in latest:
                latest[r.app] = r.node
        return all(latest.get(app) == node for app, node in primaries.items())

    return await _poll(on_primary, 20)


async def _until_thread(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def summary(trials: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kind in kinds:
        mine = [t for t in trials if t["kind"] == kind]
        outcomes = [
            AppOutcome(
                a["app"],
                0,
                None,
                a["mttr_ms"],
                a["recovered_by"],
                a["touched"],
                a["touched_failed"],
                a["touched_unanswered"],
                tuple(a["touched_latency_ms"]),
            )
            for t in mine
            for a in t["apps"]
            if a["mode"] == "warm"
        ]
        detection = [
            t["node_dead"]["detection_ms"]
            for t in mine
            if t["node_dead"] and t["node_dead"]["detection_ms"] is not None
        ]
        seen = [t["node_dead"]["seen_ms"] for t in mine if t["node_dead"]]
        result[kind] = {
            "trials": len(mine),
            **summarize_outcomes(outcomes),
            "dead_declared": len(seen),
            "detection_mean_ms": _r(statistics.fmean(detection) if detection else None),
            "dead_seen_mean_ms": _r(statistics.fmean(seen) if seen else None),
            "dead_seen_max_ms": _r(max(seen) if seen else None),
        }
    return result


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _trial_line(t: dict[str, Any]) -> str:
    mttrs = ", ".join(f"{a['app']} {_ms(a['mttr_ms'])}" for a in t["apps"])
    nd = t["node_dead"]
    dead = (
        "not declared dead"
        if nd is None
        else f"dead after {_ms(nd['detection_ms'])} ms (seen {_ms(nd['seen_ms'])})"
    )
    return f"trial {t['trial']} {t['kind']} {t['node']}: MTTR ms {mttrs}; {dead}"


def table(doc: dict[str, Any]) -> str:
    targets = doc["targets"]
    lines = [doc["command"], ""]
    for run in doc["runs"]:
        s = run["steady"]
        box = s["box"]
        lines.append(
            f"[{run['code']}] {run['nodes']} nodes, {run['apps']} apps, one request every "
            f"{run['period_ms']:g} ms per app (open loop) via {run['via']}, load generator "
            f"{run['load_generator']}"
        )
        lines.append(
            f"  steady: p50 {_ms(s['p50_ms'])} ms, p99 {_ms(s['p99_ms'])} ms, max {_ms(s['max_ms'])} ms "
            f"over {s['requests']} requests, {s['failed']} failed; "
            f"send lag p99 {_ms(s['send_lag_p99_ms'])} ms; box {box['cpu_percent']} % of {box['cores']} "
            f"cores busy, load {' '.join(f'{v:.2f}' for v in box['loadavg'])}"
            f"  (target p50 <= {targets['steady_p50_ms']:g} ms)"
        )
        lines.append(
            "  CPU during it, % of one core: "
            + ", ".join(f"{name} {share:.1f}" for name, share in s["process_cpu_percent"].items())
        )
        lines.append(
            f"  {'trial':>5} {'kind':<8} {'node':<8} {'app':<10} {'MTTR ms':>9} {'from':<13} {'by':<8} "
            f"{'touched':>7} {'failed':>6} {'max ms':>8} {'dead ms':>8} {'seen ms':>8} "
            f"{'box %':>6} {'load':>5}"
        )
        for t in run["trials"]:
            nd = t["node_dead"] or {}
            for a in t["apps"]:
                lines.append(
                    f"  {t['trial']:>5} {t['kind']:<8} {t['node']:<8} {a['app']:<10} {_ms(a['mttr_ms']):>9} "
                    f"{a['from']:<13} {a['recovered_by'] or '-':<8} {a['touched']:>7} "
                    f"{a['touched_failed'] + a['touched_unanswered']:>6} {_ms(a['touched_max_ms']):>8} "
                    f"{_ms(nd.get('detection_ms')):>8} {_ms(nd.get('seen_ms')):>8} "
                    f"{t['box']['cpu_percent']:>6.1f} {t['box']['loadavg'][0]:>5.2f}"
                )
        for kind, k in run.get("summary", {}).items():
            target = targets.get(f"{kind}_mttr_mean_ms")
            lines.append(
                f"  {kind}: {k['recovered']}/{k['apps']} warm apps recovered in {k['trials']} trials; "
                "MTTR mean "
                f"{_ms(k['mttr_mean_ms'])} ms, p50 {_ms(k['mttr_p50_ms'])}, max {_ms(k['mttr_max_ms'])}"
                f" (target mean <= {target:g} ms); touched requests {k['touched_requests']}, failed "
                f"{k['touched_failed']}, unanswered {k['touched_unanswered']}, "
                f"max {_ms(k['touched_max_ms'])} ms; declared dead {k['dead_declared']}/{k['trials']}, "
                f"detection mean {_ms(k['detection_mean_ms'])} ms,"
                f" seen mean {_ms(k['dead_seen_mean_ms'])} ms, max {_ms(k['dead_seen_max_ms'])} ms"
                + (
                    f" (target <= {targets['dead_ms']:g} ms on a quiet machine)"
                    if kind == "SIGSTOP"
                    else " (a crash is seen by connection close)"
                )
            )
        lines.append(
            f"  requests {run['requests']}, failed {run['failed_requests']}, "
            f"skipped (in-flight cap) {run['skipped']}"
            + (f"; stopped early: {run['error']}" if run.get("error") else "")
        )
        for message, count in run.get("errors", []):
            lines.append(f"    {count} x {message}")
        lines.append("")
    return "\n".join(lines).rstrip()
