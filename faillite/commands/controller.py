"""``faillite controller``: run the cluster controller (see ``faillite.controller``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from faillite.errors import CliError, describe_validation

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "controller",
        help="run the controller: node registry, failure detection, failover, routes",
        description="Run the faillite controller; agents join with `faillite agent --controller URL`.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=7000, help="port; 0 picks a free one (default %(default)s)"
    )
    parser.add_argument("--state", type=Path, required=True, help="SQLite state file (created when missing)")
    parser.add_argument(
        "--profiles", type=Path, nargs="+", default=[], help="profile JSON files of the families"
    )
    parser.add_argument(
        "--manifests",
        type=Path,
        nargs="+",
        default=[],
        help="family manifests (files or directories): families of one task and signature may share "
        "a warm fallback (policy faillite-shared); built-in families need none",
    )
    parser.add_argument(
        "--token", default=os.environ.get("FAILLITE_TOKEN"), help="cluster token ($FAILLITE_TOKEN)"
    )
    parser.add_argument(
        "--heartbeat-interval-ms",
        type=float,
        default=None,
        help="agents beat this often (default 60)",
    )
    parser.add_argument(
        "--heartbeat-timeout-ms",
        type=float,
        default=None,
        help="never declare a node dead by silence sooner than this (default: adaptive only)",
    )
    parser.add_argument(
        "--phi",
        type=float,
        default=None,
        help="dead when a beat this late has P < 10**-phi (default 8)",
    )
    parser.add_argument(
        "--acceptable-pause-ms",
        type=float,
        default=None,
        help="silence always tolerated on top of the adaptive estimate (default 30)",
    )
    parser.add_argument("--policy", default="faillite", help="placement policy (default %(default)s)")
    parser.add_argument("--method", default="exact", choices=["exact", "greedy"])
    parser.add_argument("--no-progressive", action="store_true", help="cold failover without stepping stones")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from faillite.controller.config import ControllerConfig
    from faillite.controller.server import serve
    from faillite.controller.store import StoreError
    from faillite.profiler.format import ProfileError, load_profiles

    for path in args.profiles:
        try:
            load_profiles(path)
        except ProfileError as exc:
            raise CliError(str(exc)) from exc
    from faillite.zoo.manifest import ManifestError, load_manifest

    for path in args.manifests:
        try:
            load_manifest(path / "manifest.json" if path.is_dir() else path, verify=False)
        except ManifestError as exc:
            raise CliError(str(exc)) from exc
    try:
        config = ControllerConfig(
            host=args.host,
            port=args.port,
            state_path=args.state,
            token=args.token or None,
            profiles=tuple(args.profiles),
            manifests=tuple(args.manifests),
            heartbeat_timeout_ms=args.heartbeat_timeout_ms,
            **{
                key: value
                for key, value in (
                    ("heartbeat_interval_ms", args.heartbeat_interval_ms),
                    ("phi_dead", args.phi),
                    ("acceptable_pause_ms", args.acceptable_pause_ms),
                )
                if value is not None
            },
            policy=args.policy,
            method=args.method,
            progressive=not args.no_progressive,
        )
    except ValidationError as exc:
        raise CliError(describe_validation(exc)) from exc
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s controller %(message)s"
    )
    from faillite import eventloop  # uvloop where installed, as the agent (see faillite.eventloop)

    try:
        return eventloop.run(serve(config))
    except StoreError as exc:
        raise CliError(str(exc)) from exc
