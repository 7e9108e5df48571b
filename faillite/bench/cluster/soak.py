"""``faillite bench soak``: does the default failure detector stay right when the box is busy?

A local cluster at the controller's DEFAULT settings (nothing overridden), ``--hogs`` CPU-bound
processes unrelated to faillite saturating the cores, and open-loop paced request load through
``faillite.client.Client`` for ``--minutes`` (fractions allowed). No node is failed, so every
``node_dead`` event is a false failover; ``failure_suspected`` events are counted beside them.
Printed: those counts, failed requests, latency p50/p99, the box's CPU utilisation and load.
The hogs and the cluster are ended on every way out (Ctrl-C and errors included); a hog also
exits by itself when this process is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from faillite.bench.cluster.harness import (
    BoxMeter,
    bench_config,
    emit,
    finish_parser,
    measure_runs,
    running_cluster,
    separate_load,
)
from faillite.bench.cluster.loadgen import paced_load
from faillite.bench.cluster.mttr import latency_stats, round_ms, top_errors
from faillite.bench.stats import percentile
from faillite.launch.cluster import LocalCluster
from faillite.launch.http import http_json

__all__ = ["Hogs", "add_parser", "count_events", "measure_soak", "run"]

# Busy-loops until its parent (this benchmark) is gone.
_HOG = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(200000): pass\n"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "soak", help="false node_dead count at default settings with the cores saturated by other processes"
    )
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="soak length (fractions allowed; default 10)"
    )
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound unrelated processes (default 2)")
    parser.add_argument("--nodes", type=int, default=4, help="agents (default %(default)s)")
    parser.add_argument("--apps", type=int, default=8, help="digits apps (default %(default)s)")
    parser.add_argument("--period-ms", type=float, default=5.0, help="each app's request period (default 5)")
    finish_parser(parser, run)


def run(args: argparse.Namespace) -> int:
    from faillite.errors import CliError

    if args.minutes <= 0 or args.hogs < 0 or args.nodes < 2 or args.apps < 1 or args.period_ms <= 0:
        raise CliError("--minutes and --period-ms must be positive, --hogs not negative, --nodes at least 2")
    if args.rounds < 1:
        raise CliError("--rounds must be positive")
    doc = measure_runs(
        args,
        "faillite-soak-",
        lambda **where: measure_soak(
            minutes=args.minutes,
            hogs=args.hogs,
            period_s=args.period_ms / 1000,
            **where,
            separate=separate_load(args),
        ),
    )
    emit(doc, args.json, table)
    return 0


class Hogs:
    """``count`` busy-looping Python processes; ``stop()`` ends them (also as a context manager)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Hogs:
        for _ in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", _HOG],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # Ctrl-C reaches us; we end them
                )
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.kill()
        for p in self.processes:
            p.wait(5)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


def count_events(events: list[dict[str, Any]], after_id: int) -> dict[str, Any]:
    """False failovers and suspicions among events with id > ``after_id`` (no node was failed)."""
    mine = [e for e in events if int(e.get("id", 0)) > after_id]
    dead = [e for e in mine if e.get("kind") == "node_dead"]
    return {
        "false_node_dead": len(dead),
        "failure_suspected": sum(1 for e in mine if e.get("kind") == "failure_suspected"),
        "node_dead_events": [
            {k: e.get(k) for k in ("id", "ts", "node", "reason", "detection_ms")} for e in dead
        ],
    }


def measure_soak(
    *,
    minutes: float,
    hogs: int,
    nodes: int,
    apps: int,
    period_s: float,
    workdir: Path,
    code: Path | None,
    say: Any,
    separate: bool = False,
) -> dict[str, Any]:
    config = bench_config(nodes, apps, gateway=True)  # no controller section: the defaults
    with running_cluster(config, workdir, code, say) as cluster:
        first_id = int(http_json("GET", f"{cluster.controller_url}/v1/status")[1].get("last_event_id") or 0)
        with Hogs(hogs) as hog:
            say(
                f"{hogs} CPU hogs started (pids {', '.join(map(str, hog.pids)) or '-'}); "
                f"soaking {minutes:g} min"
            )
            body = asyncio.run(_soak(cluster, minutes * 60, period_s, first_id, separate, say))
            body["hog_pids"] = hog.pids
        events = _all_events(cluster, first_id)
        body["events"] = count_events(events, first_id)
        body["cluster_alive"] = sorted(n["id"] for n in cluster.nodes() if n["state"] == "alive")
    return {
        "load_generator": "own process" if separate else "in the benchmark process",
        "minutes": minutes,
        "hogs": hogs,
        "nodes": nodes,
        "apps": apps,
        "period_ms": period_s * 1000,
        **body,
    }


def _all_events(cluster: LocalCluster, since: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while page := http_json("GET", f"{cluster.controller_url}/v1/events?since={since}&limit=10000")[1]:
        events.extend(page)
        since = int(page[-1]["id"])
    return events


async def _soak(
    cluster: LocalCluster, seconds: float, period_s: float, first_id: int, separate: bool, say: Any
) -> dict[str, Any]:
    meter = BoxMeter().start()
    started = time.monotonic()
    async with paced_load(cluster, period_s, separate=separate) as load, aiohttp.ClientSession() as session:
        while (left := started + seconds - time.monotonic()) > 0:
            await asyncio.sleep(min(10.0, left))
            dead = await _dead_so_far(session, cluster.controller_url, first_id)
            failed = sum(1 for r in load.records if not r.ok)
            say(
                f"{time.monotonic() - started:5.0f}/{seconds:.0f} s: {len(load.records)} requests, "
                f"{failed} failed, node_dead so far {dead}"
            )
    box = meter.stop()
    ok = [r.latency_ms for r in load.records if r.ok and r.latency_ms is not None]
    return {
        "seconds": round(time.monotonic() - started, 1),
        "requests": len(load.records),
        "failed_requests": sum(1 for r in load.records if not r.ok),
        "skipped": load.skipped,
        "errors": top_errors(load.records),
        "latency": latency_stats(ok),
        "send_lag_p99_ms": round_ms(percentile([(r.start - r.due) * 1000 for r in load.records], 99)),
        "box": box,
    }


async def _dead_so_far(session: aiohttp.ClientSession, url: str, since: int) -> int | str:
    try:
        async with session.get(
            f"{url}/v1/events?since={since}&limit=10000", timeout=aiohttp.ClientTimeout(total=5)
        ) as response:
            return sum(1 for e in await response.json() if e.get("kind") == "node_dead")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"? ({exc})"


def table(doc: dict[str, Any]) -> str:
    lines = [doc["command"], ""]
    for run in doc["runs"]:
        lat, box, ev = run["latency"], run["box"], run["events"]
        lines.append(
            f"[{run['code']}] {run['nodes']} nodes, {run['apps']} apps, "
            f"one request every {run['period_ms']:g} ms "
            f"per app, {run['hogs']} CPU hogs, controller defaults, {run['seconds']:g} s, "
            f"load generator {run['load_generator']}"
        )
        lines.append(f"  false node_dead events   {ev['false_node_dead']}   (target 0)")
        lines.append(f"  failure_suspected        {ev['failure_suspected']}")
        lines.append(
            f"  requests                 {run['requests']} "
            f"({run['failed_requests']} failed, {run['skipped']} skipped)"
        )
        lines.append(
            f"  latency                  p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
            f"max {lat['max_ms']} ms"
            f"; send lag p99 {run['send_lag_p99_ms']} ms"
        )
        lines.append(
            f"  box                      {box['cpu_percent']} % of {box['cores']} cores busy, load "
            f"{' '.join(f'{v:.2f}' for v in box['loadavg'])}"
        )
        for message, count in run["errors"]:
            lines.append(f"    {count} x {message}")
        for e in ev["node_dead_events"]:
            lines.append(f"    node_dead {e['node']}: {e['reason']} (detection {e['detection_ms']} ms)")
        lines.append("")
    return "\n".join(lines).rstrip()
