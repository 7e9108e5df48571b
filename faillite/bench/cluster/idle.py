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
import contextlib
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faillite.bench.cluster.harness import (
    BoxMeter,
    Progress,
    bench_config,
    cluster_processes,
    running_cluster,
)
from faillite.bench.cputime import cpu_share, sample_process
from faillite.launch.process import LaunchError

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
    _code_args(parser, load=False)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def _code_args(parser: argparse.ArgumentParser, *, load: bool = True) -> None:
    parser.add_argument(
        "--code-path",
        type=Path,
        metavar="DIR",
        help="benchmarking aid: the cluster's processes import faillite from DIR (default: this checkout)",
    )
    parser.add_argument(
        "--baseline",
        "--baseline-code",
        dest="baseline",
        type=Path,
        metavar="DIR",
        help="also measure a cluster running the faillite in DIR (e.g. a git worktree of an older commit)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="measurements per code tree, interleaved")
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep each cluster's logs and state under DIR (default: temporary)",
    )
    if not load:
        return
    parser.add_argument(
        "--load-process",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send the load from a process of its own running the cluster's faillite (its client); "
        "default: on with --baseline or --code-path, else the load runs in the benchmark process",
    )


@contextlib.contextmanager
def run_dir(keep: Path | None, name: str, prefix: str) -> Iterator[Path]:
    """``keep``/``name`` (kept afterwards) or a temporary directory (removed)."""
    if keep is not None:  # a fresh directory each run: a controller must not adopt an old state file
        path = (keep / f"{time.strftime('%Y%m%dT%H%M%S')}-{name}").resolve()
        path.mkdir(parents=True, exist_ok=False)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def separate_load(args: argparse.Namespace) -> bool:
    if getattr(args, "load_process", None) is not None:
        return bool(args.load_process)
    return args.baseline is not None or args.code_path is not None


def code_runs(args: argparse.Namespace) -> list[tuple[str, Path | None]]:
    """(label, code dir) for each measurement, baseline and current interleaved."""
    from faillite.errors import CliError

    for option, where in (("--baseline", args.baseline), ("--code-path", args.code_path)):
        if where is not None and not (where / "faillite" / "__init__.py").is_file():
            raise CliError(f"{option} {where}: no faillite package there")
    current = ("current", args.code_path)
    order = [("baseline", args.baseline), current] if args.baseline else [current]
    return [run for _ in range(args.rounds) for run in order]


def run(args: argparse.Namespace) -> int:
    from faillite.errors import CliError

    if args.nodes < 2 or args.apps < 0 or args.seconds <= 0 or args.settle < 0 or args.rounds < 1:
        raise CliError(
            "--nodes must be at least 2; --seconds, --rounds positive; --apps, --settle not negative"
        )
    say = Progress()
    command = "faillite " + shlex.join(sys.argv[1:])
    runs = []
    try:
        for i, (label, code) in enumerate(code_runs(args)):
            with run_dir(args.workdir, f"{i + 1}-{label}", "faillite-idle-") as tmp:
                result = measure_idle(
                    nodes=args.nodes,
                    apps=args.apps,
                    gateway=args.gateway,
                    seconds=args.seconds,
                    settle=args.settle,
                    workdir=tmp,
                    code=code,
                    say=say,
                )
            runs.append({"code": label, **result})
    except LaunchError as exc:  # a process did not start: say so, no traceback
        raise CliError(f"the benchmark's cluster failed: {exc}", exit_code=1) from exc
    doc = {"command": command, "target_total_percent": TARGET_TOTAL_PERCENT, "runs": runs}
    if args.json:
        print(json.dumps(doc))
    else:
        print(table(doc))
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
    first = {pid: sample_process(pid, time.monotonic()) for _, pid in processes}
    await asyncio.sleep(seconds)
    last = {pid: sample_process(pid, time.monotonic()) for _, pid in processes}
    box = meter.stop()
    rows = [
        {"process": name, "pid": pid, "cpu_percent": round(cpu_share(first[pid], last[pid]), 2)}
        for name, pid in processes
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
