"""``faillite up --config FILE``: a local cluster of processes, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import threading
from pathlib import Path

from faillite.errors import CliError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "up",
        help="start a local cluster (controller, agents, gateway) and deploy its apps",
        description=(
            "Start the controller, one agent per node and the gateway as processes on this machine, "
            "deploy the apps of the cluster file, print the endpoints, and stop everything on Ctrl-C "
            "or SIGTERM."
        ),
    )
    parser.add_argument(
        "--config", type=Path, required=True, help="cluster file (see examples/local-cluster.yaml)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="state, repository and logs (default: a temporary directory)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line once deployed and protected")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds allowed for start-up")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from faillite.launch.cluster import LocalCluster
    from faillite.launch.config import ClusterConfigError, load_cluster_config
    from faillite.launch.process import LaunchError

    try:
        config = load_cluster_config(args.config)
    except ClusterConfigError as exc:
        raise CliError(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="faillite-up-") as tmp:
        workdir = args.workdir or Path(tmp)
        quiet = args.json
        cluster = LocalCluster(config, workdir, say=(lambda _m: None) if quiet else print)
        try:
            try:
                cluster.start(timeout=args.timeout)
            except LaunchError as exc:
                raise CliError(f"{exc} (logs in {workdir / 'logs'})", exit_code=1) from exc
            if stop.is_set():
                return 130
            if args.json:
                print(json.dumps(cluster.describe()), flush=True)
            else:
                _print(cluster)
            while not stop.wait(0.5):
                dead = [n for n, a in cluster.agents.items() if not a.alive()]
                if cluster.controller is not None and not cluster.controller.alive():
                    raise CliError(f"the controller exited; see {cluster.controller.log_path}", exit_code=1)
                if dead and not quiet:
                    print(f"agent process gone: {', '.join(dead)} (the controller fails its apps over)")
                    quiet = True
        finally:
            cluster.stop()
    return 0


def _print(cluster) -> None:  # type: ignore[no-untyped-def]
    d = cluster.describe()
    print(f"controller  {d['controller']}")
    if d["gateway"]:
        print(f"gateway     {d['gateway']}   (OIP per app: POST {d['gateway']}/v2/models/<app>/infer)")
    for node in d["nodes"]:
        print(f"node        {node['id']:<10} {node['url']:<28} pid {node['pid']}")
    print(f"apps        {', '.join(d['apps'])}")
    print("cluster is up; Ctrl-C stops it")
