"""``faillite demo``: what `make demo` runs — a local cluster, a node killed, the recovery table."""

from __future__ import annotations

import argparse
from pathlib import Path

from faillite.errors import CliError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the demo: a local cluster under load, a node killed, recovery and failback",
        description=(
            "Start a controller, four agents and a gateway on this machine, deploy ten apps, run one "
            "client per app, SIGKILL the busiest node, print how each app recovered, then restart "
            "the node and fail back."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--steady", type=float, default=2.0, help="seconds of load before the failure")
    parser.add_argument("--workdir", type=Path, help="keep the cluster's state and logs here")
    parser.add_argument(
        "--tour", action="store_true", help="instead: one agent serving the digits family (no cluster)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.tour:
        from faillite.demo.agent_tour import run_agent_tour

        return run_agent_tour()
    from faillite.demo.failover import run_failover_demo
    from faillite.launch.process import LaunchError

    if args.steady <= 0:
        raise CliError("--steady must be positive")
    try:
        return run_failover_demo(as_json=args.json, steady_s=args.steady, workdir=args.workdir)
    except (LaunchError, TimeoutError) as exc:
        raise CliError(str(exc), exit_code=1) from exc
