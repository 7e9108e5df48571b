"""``faillite bench idle``: what an idle cluster costs in CPU.

Starts the N-node cluster ``faillite up`` would (controller, agents, gateway; apps deployed so
the agents hold their models), sends no requests, waits ``--settle`` seconds, then reads each
process's CPU time (user + system, all threads, through psutil) at the start and the end
of a ``--seconds`` window. A share is % of one core. With ``--baseline DIR`` the same is measured
for a cluster running the faillite in DIR, rounds interleaved (baseline, current, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from faillite.bench.cluster.harness import (
    BoxMeter,
    ProcessMeter,
    Progress,
    bench_config,
    cluster_processes,
    emit,
    finish_parser,
    measure_runs,
    running_cluster,
)

__all__ = ["add_parser", "measure_idle", "run"]

TARGET_TOTAL_PERCENT = 3.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("idle", help="CPU share of an idle local cluster, per process, from /proc")
    parser.add_argument("--nodes", type=int, default=4, help="agents (default %(default)s)")
    parser.add_argument("--apps", type=int, default=8, help="digits apps deployed (default %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="measurement window (default %(default)s)"
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="wait after deployment (default %(default)s)"
    )
    parser.add_argument(
        "--gateway", action=argparse.BooleanOptionalAction, default=True, help="run a gateway"
    )
    finish_parser(parser, run, load=False)


def run(args: argparse.Namespace) -> int:
    from faillite.errors import CliError

    if args.nodes < 2 or args.apps < 0 or args.seconds <= 0 or args.settle < 0 or args.rounds < 1:
        raise CliError(
            "--nodes must be at least 2; --seconds, --rounds positive; --apps, --settle not negative"
        )
    doc = measure_runs(
        args,
        "faillite-idle-",
        lambda **where: measure_idle(
            gateway=args.gateway,
            seconds=args.seconds,
            settle=args.settle,
            **where,
        ),
        target_total_percent=TARGET_TOTAL_PERCENT,
    )
    emit(doc, args.json, table)
    return 0


def measure_idle(
    *,
    nodes: int,
    apps: int,
    gateway: bool,
    seconds: float,
    settle: float,
    workdir: Path,
    code: Path | None,
    say: Progress | Any,
) -> dict[str, Any]:
    config = bench_config(nodes, apps, gateway=gateway)
    with running_cluster(config, workdir, code, say) as cluster:
        say(f"deployed; settling {settle:g} s")
        time.sleep(settle)
        processes = cluster_processes(cluster)
        say(f"measuring {len(processes)} processes for {seconds:g} s")
        rows = asyncio.run(_window(processes, seconds))
    total = round(sum(r["cpu_percent"] for r in rows["processes"]), 2)
    return {
        "nodes": nodes,
        "apps": apps,
        "gateway": gateway,
        "seconds": seconds,
        "processes": rows["processes"],
        "total_cpu_percent": total,
        "box": rows["box"],
    }


async def _window(processes: list[tuple[str, int]], seconds: float) -> dict[str, Any]:
    meter = BoxMeter().start()
    procs = ProcessMeter(processes).start()
    await asyncio.sleep(seconds)
    shares = procs.stop()
    box = meter.stop()
    rows = [
        {"process": name, "pid": pid, "cpu_percent": shares[name]}
        for name, pid in processes
        if name in shares
    ]
    return {"processes": rows, "box": box}


def table(doc: dict[str, Any]) -> str:
    lines = [doc["command"], ""]
    runs = doc["runs"]
    for run in runs:
        box = run["box"]
        lines.append(
            f"[{run['code']}] {run['nodes']} nodes, {run['apps']} apps, "
            f"gateway {'on' if run['gateway'] else 'off'}, "
            f"{run['seconds']:g} s window"
        )
        lines.append(f"  {'process':<14} {'pid':>7} {'% of one core':>14}")
        for row in run["processes"]:
            lines.append(f"  {row['process']:<14} {row['pid']:>7} {row['cpu_percent']:>14.2f}")
        verdict = "meets" if run["total_cpu_percent"] <= doc["target_total_percent"] else "misses"
        lines.append(
            f"  {'total':<14} {'':>7} {run['total_cpu_percent']:>14.2f}   ({verdict} the "
            f"{doc['target_total_percent']:g} % target)"
        )
        lines.append(
            f"  box: {box['cpu_percent']:.1f} % of {box['cores']} cores busy during the window; "
            f"load average {' '.join(f'{v:.2f}' for v in box['loadavg'])}"
        )
        lines.append("")
    labels = {r["code"] for r in runs}
    if {"baseline", "current"} <= labels:
        mean = {
            label: sum(r["total_cpu_percent"] for r in runs if r["code"] == label)
            / sum(1 for r in runs if r["code"] == label)
            for label in ("baseline", "current")
        }
        ratio = mean["current"] / mean["baseline"] if mean["baseline"] else float("nan")
        lines.append(
            f"total: baseline {mean['baseline']:.2f} %, current {mean['current']:.2f} % of one core "
            f"(current / baseline = {ratio:.2f})"
        )
    return "\n".join(lines).rstrip()
