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
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from faillite.bench.cluster.harness import (
    BoxMeter,
    EventWatch,
    ProcessMeter,
    bench_config,
    cluster_processes,
    emit,
    finish_parser,
    measure_runs,
    running_cluster,
    separate_load,
)
from faillite.bench.cluster.loadgen import paced_load
from faillite.bench.cluster.mttr import latency_stats, round_ms, top_errors
from faillite.bench.cluster.paced import LoadBase
from faillite.bench.cluster.warm_report import summary, table, trial_line
from faillite.bench.cluster.warm_trials import KINDS, trial
from faillite.bench.stats import percentile
from faillite.launch.cluster import LocalCluster

__all__ = ["TARGETS", "add_parser", "measure_warm", "run"]

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
    finish_parser(parser, run)


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
    doc = measure_runs(
        args,
        "faillite-warm-",
        lambda **where: measure_warm(
            via=args.via,
            period_s=args.period_ms / 1000,
            steady_s=args.steady,
            trials=args.trials,
            kinds=kinds,
            observe_s=args.observe,
            deadline_s=args.deadline,
            separate=separate_load(args),
            **where,
        ),
        targets=TARGETS,
    )
    emit(doc, args.json, table)
    return 0 if all(r.get("error") is None for r in doc["runs"]) else 1


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
    settings = _Settings(via, period_s, steady_s, trials, kinds, observe_s, deadline_s, separate)
    config = bench_config(nodes, apps, gateway=True)
    with running_cluster(config, workdir, code, say) as cluster:
        body = asyncio.run(_measure(cluster, settings, say))
    return {
        "via": via,
        "load_generator": "own process" if separate else "in the benchmark process",
        "nodes": nodes,
        "apps": apps,
        "period_ms": period_s * 1000,
        **body,
    }


@dataclass(frozen=True)
class _Settings:
    via: str
    period_s: float
    steady_s: float
    trials: int
    kinds: list[str]
    observe_s: float
    deadline_s: float
    separate: bool


async def _measure(cluster: LocalCluster, s: _Settings, say: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        watch = await asyncio.to_thread(EventWatch.from_now, session, cluster)
        watch.start()
        try:
            async with paced_load(
                cluster, s.period_s, via=s.via, deadline_s=s.deadline_s, separate=s.separate
            ) as load:
                return await _phases(cluster, load, watch, s, say)
        finally:
            await watch.stop()


async def _phases(
    cluster: LocalCluster,
    load: LoadBase,
    watch: EventWatch,
    s: _Settings,
    say: Any,
) -> dict[str, Any]:
    steady_s, kinds = s.steady_s, s.kinds
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
        "send_lag_p99_ms": round_ms(percentile([(r.start - r.due) * 1000 for r in window], 99)),
        "box": box,
        "process_cpu_percent": shares,
    }
    say(
        f"steady: p50 {steady['p50_ms']} ms, p99 {steady['p99_ms']} ms over {steady['requests']} requests; "
        f"box {box['cpu_percent']} % busy, load {box['loadavg'][0]:.2f}"
    )
    out: dict[str, Any] = {"steady": steady, "trials": [], "error": None}
    for number in range(s.trials):
        for kind in kinds:
            try:
                record = await trial(cluster, load, watch, number, kind, s.observe_s)
            except RuntimeError as exc:
                out["error"] = str(exc)
                say(f"stopping: {exc}")
                break
            out["trials"].append(record)
            say(trial_line(record))
        if out["error"]:
            break
    out["summary"] = summary(out["trials"], kinds)
    out["requests"] = len(load.records)
    out["failed_requests"] = sum(1 for r in load.records if not r.ok)
    out["skipped"] = load.skipped
    out["errors"] = top_errors(load.records)
    return out
