"""``faillite bench failover``: every policy, one cluster each, every single-node failure injected.

Full (default): scenario ``paper``, every policy, open-loop load at the apps' rates, every node
failed by SIGKILL (and the first ``--stop-nodes`` by SIGSTOP) at the scenario's default headroom,
then a spare-memory sweep (headrooms 0.1 to 1.0, SIGKILL of the first ``--sweep-nodes`` nodes,
five policies; faillite without progressive failover plans exactly as faillite, and none keeps
no backups, so they are left out of the sweep). ``--load closed``: the closed-loop stress load.
``--quick``: scenario digits, faillite and full-cold, one node, SIGKILL, no sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from faillite.bench.failover import plots
from faillite.bench.failover.report import document
from faillite.bench.failover.run import KINDS, LOADS, POLICIES, PolicyRun, run_policy
from faillite.bench.failover.scenarios import SCENARIOS, scenario
from faillite.bench.failover.table import table

__all__ = ["register", "run_benchmark"]

SWEEP_HEADROOMS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_SWEEP_POLICIES = ("faillite", "faillite-shared", "hetero-warm-only", "full-warm", "full-cold")


class _Progress:
    """A one-line progress bar on stderr (a line per step where stderr is not a terminal).

    Steps are weighted (a step that starts a cluster costs about ``_START`` injections), so the
    time left extrapolates from the work done, not the step count: the sweep's steps each start
    a cluster, the main runs' mostly do not."""

    def __init__(self, weights: list[float], enabled: bool = True) -> None:
        self.weights = weights or [1.0]
        self.total, self.done, self.enabled = len(self.weights), 0, enabled
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(self, what: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = round(width * self.done / self.total)
        elapsed = time.monotonic() - self.started
        done_w = sum(self.weights[: self.done])
        left = elapsed / done_w * (sum(self.weights) - done_w) if done_w else 0.0
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:5.0f} s"
            f" (~{left / 60:.0f} min left)  {what}"
        )
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line[:150])
            if self.done >= self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


_START = 3.0  # a cluster start costs about this many injections (paper: ~20 s against ~7 s)


def _weights(clusters: int, injections: int) -> list[float]:
    """Each cluster's ticks: its first carries the start."""
    return [(1.0 + _START) if i == 0 else 1.0 for _ in range(clusters) for i in range(injections)]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def run_benchmark(
    *,
    scenario_name: str,
    policies: list[str],
    nodes: int | None,
    kinds: list[str],
    stop_nodes: int | None,
    headroom: float | None,
    sweep: tuple[float, ...],
    sweep_nodes: int,
    workdir: Path,
    command: str,
    load: str = "open",
    settle_timeout_s: float = 20.0,
    progress: bool = True,
) -> dict[str, Any]:
    sc = scenario(scenario_name)
    h = sc.default_headroom if headroom is None else headroom
    failed = [sc.node_id(i) for i in range(sc.nodes if nodes is None else min(nodes, sc.nodes))]
    swept = [sc.node_id(i) for i in range(min(sweep_nodes, sc.nodes))]
    failures = [
        (node, kind)
        for i, node in enumerate(failed)
        for kind in kinds
        if kind != "SIGSTOP" or stop_nodes is None or i < stop_nodes
    ]
    sweep_policies = [p for p in _SWEEP_POLICIES if p in policies]
    sweep_points = [x for x in sweep if abs(x - h) > 1e-9]
    weights = _weights(len(policies), len(failures))
    weights += _weights(len(sweep_points) * len(sweep_policies), len(swept))
    tick = _Progress(weights, progress)
    load_before = _load()
    started = time.monotonic()
    opts: dict[str, Any] = {"load": load, "settle_timeout_s": settle_timeout_s, "tick": tick}
    runs: list[PolicyRun] = []
    for label in policies:
        runs.append(
            run_policy(sc, label, headroom=h, failures=failures, workdir=workdir / f"{label}-{h}", **opts)
        )
    sweep_runs: list[PolicyRun] = []
    if sweep_points:
        sweep_runs += [r for r in runs if r.label in sweep_policies]  # the default headroom's point
        for x in sweep_points:
            for label in sweep_policies:
                sweep_runs.append(
                    run_policy(
                        sc,
                        label,
                        headroom=x,
                        failures=[(n, "SIGKILL") for n in swept],
                        workdir=workdir / f"{label}-{x}",
                        **opts,
                    )
                )
    doc = document(
        sc,
        runs,
        sweep_runs,
        kinds=kinds,
        failures=failures,
        load_before=load_before,
        load_mode=load,
        elapsed_s=time.monotonic() - started,
        command=command,
    )
    doc["load_after"] = _load()
    doc["sweep_failed_nodes"] = swept if sweep_points else []
    return doc


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "failover",
        help="failure injection under load: recovery, MTTR and accuracy per placement policy",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="digits, faillite and full-cold, one node, SIGKILL, open loop, no sweep (under 3 minutes)",
    )
    p.add_argument(
        "--load",
        choices=LOADS,
        default="open",
        help="open: Poisson arrivals at each app's rate (default); closed: one request in flight per "
        "app, back to back (a stress load that saturates the box)",
    )
    p.add_argument(
        "--settle-timeout",
        type=float,
        default=20.0,
        help="seconds to wait per failure for every affected app to settle (default 20)",
    )
    p.add_argument(
        "--scenario", choices=sorted(SCENARIOS), default=None, help="default: paper (quick: digits)"
    )
    p.add_argument(
        "--policies", default=None, help=f"comma-separated, from {', '.join(POLICIES)} (default: all)"
    )
    p.add_argument(
        "--nodes", type=int, default=None, help="fail only the first N nodes (default: every node)"
    )
    p.add_argument(
        "--kinds", default=None, help="comma-separated failure kinds: SIGKILL,SIGSTOP (default both)"
    )
    p.add_argument(
        "--headroom",
        type=float,
        default=None,
        help="spare memory per node as a fraction of the primaries' (default: the scenario's)",
    )
    p.add_argument(
        "--sweep",
        default=None,
        help="comma-separated headrooms for the sweep, '' for none (default 0.1,0.2,...,1.0)",
    )
    p.add_argument(
        "--stop-nodes",
        type=int,
        default=2,
        help="SIGSTOP only the first N of the failed nodes (default 2; SIGKILL hits every one)",
    )
    p.add_argument("--sweep-nodes", type=int, default=1, help="nodes failed (SIGKILL) at each sweep point")
    p.add_argument("--json", dest="json_path", type=Path, default=None, help="write the report here")
    p.add_argument("--plots", type=Path, default=None, help="write the PNG plots into this folder")
    p.add_argument("--workdir", type=Path, default=None, help="keep the clusters' logs here")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    quick = args.quick
    policies = (
        args.policies.split(",")
        if args.policies
        else (["faillite", "full-cold"] if quick else list(POLICIES))
    )
    unknown = [p for p in policies if p not in POLICIES]
    kinds = args.kinds.split(",") if args.kinds else (["SIGKILL"] if quick else list(KINDS))
    bad_kinds = [k for k in kinds if k not in KINDS]
    if unknown or bad_kinds:
        print(
            f"faillite bench failover: unknown policy or kind: {', '.join(unknown + bad_kinds)}",
            file=sys.stderr,
        )
        return 2
    if args.settle_timeout <= 0 or (args.headroom is not None and args.headroom < 0):
        print(
            "faillite bench failover: --settle-timeout must be positive, --headroom not negative",
            file=sys.stderr,
        )
        return 2
    if args.sweep is None:
        sweep = () if quick else SWEEP_HEADROOMS
    else:
        try:
            sweep = tuple(float(x) for x in args.sweep.split(",") if x.strip())
        except ValueError:
            print(f"faillite bench failover: --sweep: not a list of numbers: {args.sweep!r}", file=sys.stderr)
            return 2
    command = "faillite " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    # SIGTERM unwinds like Ctrl-C, so that every cluster started is stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="faillite-bench-failover-") as tmp:
        doc = run_benchmark(
            scenario_name=args.scenario or ("digits" if quick else "paper"),
            policies=policies,
            nodes=args.nodes if args.nodes is not None else (1 if quick else None),
            kinds=kinds,
            stop_nodes=args.stop_nodes,
            headroom=args.headroom,
            sweep=sweep,
            sweep_nodes=args.sweep_nodes,
            workdir=args.workdir or Path(tmp),
            command=command,
            load=args.load,
            settle_timeout_s=args.settle_timeout,
        )
    print(table(doc))
    print(f"{doc['elapsed_s']:.0f} s; before: {doc['load_before']}; after: {doc['load_after']}")
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(doc, indent=1))
        print(f"report: {args.json_path}")
    if args.plots:
        made = [
            plots.mttr_cdf(doc, args.plots / f"failover-mttr-cdf-{doc['scenario']}.png"),
            plots.phases(doc, args.plots / f"failover-phases-{doc['scenario']}.png"),
        ]
        if doc["sweep"]:
            made.append(plots.sweep(doc, args.plots / f"failover-sweep-{doc['scenario']}.png"))
        print("plots: " + ", ".join(str(m) for m in made))
    return 0
