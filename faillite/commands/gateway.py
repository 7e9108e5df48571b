"""``faillite gateway``: serve apps by name over the Open Inference Protocol (see ``faillite.gateway``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from faillite.errors import CliError

if TYPE_CHECKING:
    from faillite.wire import RouteTable

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gateway",
        help="serve apps by name over the Open Inference Protocol, with failover",
        description="Serve POST /v2/models/{app}/infer (and metadata, readiness) for every app in the "
        "route table, forwarding each request to the replica serving the app now and failing over to "
        "its warm fallbacks on a connection error, a timeout, 503 or a stale epoch; a request the "
        "primary is slow to answer is hedged to the first warm fallback. GET /metrics for Prometheus.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--controller", metavar="URL", help="the controller to take routes from")
    source.add_argument(
        "--routes",
        type=Path,
        metavar="FILE",
        help="fixed routes: a RouteTable JSON file (controller-less deployments)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port; 0 picks a free one (default %(default)s)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("FAILLITE_TOKEN"),
        help="bearer token for the controller (default: $FAILLITE_TOKEN)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds one attempt at a replica may take before it is suspected (default: 10 x the "
        "app's SLO from the route table, 0.5 s for a route without one)",
    )
    parser.add_argument(
        "--no-hedging",
        dest="hedging",
        action="store_false",
        help="do not send a slow request to the app's warm fallback too (hedging is on by default: "
        "after an adaptive delay within half the app's SLO, at most 5 %% extra requests per app)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds a request may take in all, waits for routes included (default %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from faillite.wire import RouteTable

    if (args.request_timeout is not None and args.request_timeout <= 0) or args.deadline <= 0:
        raise CliError("--request-timeout and --deadline must be positive")
    table = None
    if args.routes is not None:
        try:
            table = RouteTable.model_validate_json(args.routes.read_bytes())
        except OSError as exc:
            raise CliError(f"--routes {args.routes}: {exc.strerror or exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
            )
            raise CliError(f"--routes {args.routes}: {problems}") from exc
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s gateway %(message)s"
    )
    from faillite import eventloop  # uvloop where installed, as the agent (see faillite.eventloop)

    return eventloop.run(_serve(args, table))


async def _serve(args: argparse.Namespace, table: RouteTable | None) -> int:
    # Imported here: `faillite --help` need not load aiohttp.
    from faillite.client.failover import Client, HedgeConfig
    from faillite.gateway.server import serve

    options = {
        "request_timeout": args.request_timeout,
        "deadline": args.deadline,
        "hedging": HedgeConfig() if args.hedging else None,
    }
    if table is not None:
        client = Client.from_table(table, **options)
    else:
        client = Client(args.controller, token=args.token or None, **options)
    return await serve(client, args.host, args.port)
