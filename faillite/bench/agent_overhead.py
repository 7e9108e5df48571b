"""``faillite bench agent``: what serving through the agent costs over calling ONNX Runtime,
and what the client library, the gateway and a real Triton cost beside it, in one run.

One run starts a real agent process on loopback serving a digits variant, a ``faillite
gateway`` process on a static route table pointing at it (``--routes``; no controller), and,
when ``nvidia-pytriton`` and ``tritonclient`` are installed, a real Triton serving the same ONNX
file through its Python backend (see ``faillite.bench.agent.servers``). Then, on the same model
and inputs:

- **throughput** (closed loop, ``--concurrency`` clients): in-process ``session.run`` threads
  (the session configured as the agent configures it) and aiohttp clients posting pre-encoded
  JSON or binary bodies to the agent; ``--repeats`` runs per mode, interleaved, medians.
- **latency** (one client, one request in flight, ``--latency-requests`` per mode in
  ``--rounds`` interleaved rounds): in-process ``session.run``; the agent's
  ``GET /v2/health/live`` and infer (JSON and binary) as raw aiohttp requests of pre-encoded
  bytes on one keep-alive connection; ``faillite.client.Client`` built with
  ``Client.from_table`` (a static route table pointing at the agent): ``client`` (numpy in,
  numpy out) and ``client-raw`` (``infer_raw`` of the same bytes as ``agent-binary``); the
  gateway's health and binary infer; tritonclient (http) health, binary and JSON infer against
  the agent and against Triton. With ``--baseline-code DIR`` a second agent runs from the code
  at DIR (e.g. a git worktree of an older commit) and is measured in the same rounds.

Each latency mode is compared with a baseline mode measured in the same run (the difference
of the p50s), and the acceptance checks of issue 9 are printed with their targets.

``--json`` prints one object: ``command``; ``outputs_match`` (every path's answer equals
in-process ONNX Runtime's); ``modes``: the throughput modes, each ``mode``, ``requests``,
``throughput_rps``, ``p50_ms``, ``p99_ms``; ``latency``: the latency modes, each ``mode``,
``requests``, ``p50_ms``, ``p99_ms``, ``baseline``, ``over_baseline_ms``, ``what``;
``checks``: each ``name``, ``value``, ``target``, ``unit``, ``ok``; ``skipped``: mode or
group -> the reason it was not measured; ``load``: ``/proc/loadavg`` before and after;
``event_loop``: the agent's loop (``uvloop`` or ``asyncio``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from faillite.bench.agent import closed_loop
from faillite.bench.agent.bodies import binary_body, json_body
from faillite.bench.agent.paths import Setup, measure_latency
from faillite.bench.agent.report import checks, loadavg, print_report

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "agent", help="agent, client, gateway and Triton latency vs in-process ONNX Runtime"
    )
    parser.add_argument(
        "--variant", default="digits-mlp-64", help="digits variant to serve (default %(default)s)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="closed-loop clients (default %(default)s)"
    )
    parser.add_argument("--batch", type=int, default=1, help="rows per request (default %(default)s)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default %(default)s)")
    parser.add_argument("--requests", type=int, default=None, help="requests per run instead of --duration")
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode; medians reported")
    parser.add_argument(
        "--latency-requests",
        type=int,
        default=2000,
        help="one-client requests per mode (default %(default)s)",
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="interleaved latency rounds (default %(default)s)"
    )
    parser.add_argument("--no-gateway", action="store_true", help="do not start a gateway")
    parser.add_argument("--no-triton", action="store_true", help="do not start Triton even if installed")
    parser.add_argument(
        "--baseline-code",
        type=Path,
        metavar="DIR",
        help="also measure an agent running the code at DIR (PYTHONPATH), e.g. an older checkout",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 clients, 200 requests, 1 repeat; 100 latency requests per mode",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faillite.errors import CliError

    if args.quick:
        args.concurrency, args.requests, args.repeats = 2, 200, 1
        args.latency_requests, args.rounds = 100, 2
    positive = (
        args.concurrency,
        args.batch,
        args.repeats,
        args.requests or 1,
        args.latency_requests,
        args.rounds,
    )
    if min(positive) < 1:
        raise CliError(
            "--concurrency, --batch, --repeats, --requests, --latency-requests, --rounds must be positive"
        )
    if args.baseline_code is not None and not (args.baseline_code / "faillite").is_dir():
        raise CliError(f"--baseline-code {args.baseline_code}: no faillite package there")
    command = "faillite " + shlex.join(sys.argv[1:])
    load_before = loadavg()
    report = _measure(args)
    report.update(command=command, load={"before": load_before, "after": loadavg()})
    report["checks"] = checks(report["latency"])
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report, args)
    return 0 if report["outputs_match"] else 1


def _measure(args: argparse.Namespace) -> dict:
    import onnxruntime as ort

    from faillite.zoo.catalog import load_builtin_family
    from faillite.zoo.digits import heldout_split

    manifest = load_builtin_family("digits")
    x, _ = heldout_split()
    batches = [
        np.ascontiguousarray(x[i : i + args.batch]) for i in range(0, len(x) - args.batch + 1, args.batch)
    ][:64]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    model_path = manifest.path_of(args.variant)
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    expected = session.run(["probabilities"], {"input": batches[0]})[0]
    bodies = {
        "agent-json": [json_body(b) for b in batches],
        "agent-binary": [binary_body(b) for b in batches],
    }
    with (
        tempfile.TemporaryDirectory(prefix="faillite-bench-") as tmp,
        Setup(Path(tmp), manifest, args, model_path) as setup,
    ):
        infer_url = f"{setup.agent_url}/v2/models/{args.variant}/infer"
        results = []
        for _ in range(args.repeats):
            results.append(
                closed_loop.in_process(session, batches, args.concurrency, args.duration, args.requests)
            )
            for mode in ("agent-json", "agent-binary"):
                results.append(
                    asyncio.run(
                        closed_loop.over_http(
                            mode, infer_url, bodies[mode], args.concurrency, args.duration, args.requests
                        )
                    )
                )
        latency, matches = asyncio.run(
            measure_latency(setup, session, batches[0], expected, args.latency_requests, args.rounds)
        )
        return {
            "outputs_match": matches,
            "modes": [asdict(r) for r in closed_loop.summarize(results)],
            "latency": [asdict(r) for r in latency],
            "skipped": setup.skipped,
            "event_loop": setup.event_loop,
        }
