"""``faillite agent``: serve a model repository on this node (see ``faillite.agent``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from faillite.errors import CliError, describe_validation
from faillite.units import parse_bytes

__all__ = ["add_arguments", "register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "agent",
        help="serve a model repository over the Open Inference Protocol (KServe v2)",
        description="Serve DIR/<model>/<version>/model.onnx with ONNX Runtime over the Open Inference "
        "Protocol REST API, within a memory budget.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-id", required=True, help="this node's name in the cluster")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port; 0 picks a free one (default %(default)s)"
    )
    parser.add_argument("--memory", required=True, help="memory budget for loaded models, e.g. 2GiB")
    parser.add_argument("--models", required=True, type=Path, metavar="DIR", help="the model repository")
    parser.add_argument(
        "--token",
        default=os.environ.get("FAILLITE_TOKEN"),
        help="bearer token required by load/unload/index (default: $FAILLITE_TOKEN)",
    )
    parser.add_argument(
        "--load", nargs="+", action="extend", default=[], metavar="NAME", help="models to load at startup"
    )
    parser.add_argument("--intra-op-threads", type=int, default=1, help="ONNX Runtime threads per session")
    parser.add_argument("--infer-threads", type=int, default=4, help="threads running inference")
    parser.add_argument(
        "--inline-budget-us",
        type=float,
        default=150.0,
        metavar="US",
        help="run a model on the event loop when its measured run time is below this, instead of "
        "handing it to an inference thread; 0 never does (default %(default)s)",
    )
    parser.add_argument("--max-body", default="64MiB", help="largest request body (default %(default)s)")
    parser.add_argument("--mem-arena", action="store_true", help="enable ONNX Runtime's CPU memory arena")
    parser.add_argument("--controller", metavar="URL", help="join the cluster of this controller")
    parser.add_argument("--cores", type=float, default=1.0, help="cores this node offers (default 1)")
    parser.add_argument("--domain", help="this node's failure domain (e.g. a rack or power feed)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--no-huge-pages",
        dest="huge_pages",
        action="store_false",
        help="leave glibc's malloc on 4 KiB pages (by default the agent restarts itself once with "
        "GLIBC_TUNABLES=glibc.malloc.hugetlb=1: a crashed agent's memory then frees ~10x faster, "
        "so its connections close and the failure is seen sooner)",
    )


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from faillite.agent.config import AgentConfig

    if not args.models.is_dir():
        raise CliError(f"--models {args.models}: not a directory")
    try:
        config = AgentConfig(
            node_id=args.node_id,
            host=args.host,
            port=args.port,
            memory_bytes=parse_bytes(args.memory),
            models_dir=args.models,
            token=args.token or None,
            load=tuple(args.load),
            intra_op_threads=args.intra_op_threads,
            infer_threads=args.infer_threads,
            inline_budget_us=args.inline_budget_us,
            max_body_bytes=parse_bytes(args.max_body),
            mem_arena=args.mem_arena,
            controller_url=args.controller,
            cores=args.cores,
            domain=args.domain,
        )
    except ValueError as exc:  # parse_bytes, and pydantic's ValidationError (a ValueError)
        if isinstance(exc, ValidationError):
            raise CliError(describe_validation(exc)) from exc
        raise CliError(str(exc)) from exc
    if args.huge_pages:  # after every user error above: those end here, not in a new process
        from faillite.agent.hugepages import reexec_with_huge_pages

        reexec_with_huge_pages()  # before any model is loaded; returns when already set
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s agent[{config.node_id}] %(message)s",
    )
    from faillite import eventloop
    from faillite.agent.server import serve

    return eventloop.run(serve(config))
