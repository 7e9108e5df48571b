"""``faillite bench agent``: what serving through the agent costs over calling ONNX Runtime.

One run starts a real agent process on loopback serving a digits variant, then measures, on
the same model and inputs:

- in-process: ``concurrency`` threads calling ``session.run`` in a closed loop (the session
  configured as the agent configures it: one intra-op thread, no CPU arena);
- agent, JSON and binary encodings: ``concurrency`` aiohttp clients, each with its own
  session (keep-alive), in a closed loop against ``/v2/models/<m>/infer``.

Each mode runs ``--repeats`` times, interleaved; the figures are medians over the repeats.
Request bodies are encoded once up front, so the client's CPU goes into HTTP, not into JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["ModeResult", "register", "run"]

_MODES = ("in-process", "agent-json", "agent-binary")
_HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class ModeResult:
    mode: str
    requests: int
    throughput_rps: float
    p50_ms: float
    p99_ms: float


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("agent", help="agent inference overhead vs in-process ONNX Runtime")
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
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 clients, 200 requests, 1 repeat")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faillite.errors import CliError

    if args.quick:
        args.concurrency, args.requests, args.repeats = 2, 200, 1
    if args.concurrency < 1 or args.batch < 1 or args.repeats < 1 or (args.requests or 1) < 1:
        raise CliError("--concurrency, --batch, --repeats and --requests must be positive")
    command = "faillite " + shlex.join(sys.argv[1:])
    results, matches = _measure(args)
    summary = _summarize(results)
    if args.json:
        print(
            json.dumps({"command": command, "outputs_match": matches, "modes": [asdict(r) for r in summary]})
        )
    else:
        _print_table(command, args, summary, matches)
    return 0 if matches else 1


def _measure(args: argparse.Namespace) -> tuple[list[ModeResult], bool]:
    import onnxruntime as ort

    from faillite.launch.process import AgentProcess
    from faillite.zoo.catalog import load_builtin_family
    from faillite.zoo.digits import heldout_split
    from faillite.zoo.repository import build_repository

    manifest = load_builtin_family("digits")
    x, _ = heldout_split()
    batches = [
        np.ascontiguousarray(x[i : i + args.batch]) for i in range(0, len(x) - args.batch + 1, args.batch)
    ]
    batches = batches[:64]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    session = ort.InferenceSession(
        str(manifest.path_of(args.variant)), options, providers=["CPUExecutionProvider"]
    )
    expected = session.run(["probabilities"], {"input": batches[0]})[0]

    with tempfile.TemporaryDirectory(prefix="faillite-bench-") as tmp:
        repo = build_repository(Path(tmp) / "models", manifest, [args.variant])
        agent = AgentProcess(
            "bench", repo, "1GiB", Path(tmp) / "agent.log", extra_args=["--load", args.variant]
        )
        try:
            url = agent.start_and_wait(timeout=60)
            infer_url = f"{url}/v2/models/{args.variant}/infer"
            bodies = {
                "agent-json": [_json_body(b) for b in batches],
                "agent-binary": [_binary_body(b) for b in batches],
            }
            matches = all(
                np.allclose(asyncio.run(_one(infer_url, bodies[m][0])), expected, atol=1e-6) for m in bodies
            )
            results = []
            for _ in range(args.repeats):
                results.append(_inprocess(session, batches, args))
                for mode in ("agent-json", "agent-binary"):
                    results.append(asyncio.run(_over_http(mode, infer_url, bodies[mode], args)))
        finally:
            agent.stop()
    return results, matches


def _json_body(batch: np.ndarray) -> tuple[bytes, dict[str, str]]:
    request = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": list(batch.shape), "data": batch.ravel().tolist()}
        ],
        "outputs": [{"name": "probabilities"}],
    }
    return json.dumps(request).encode(), {"Content-Type": "application/json"}


def _binary_body(batch: np.ndarray) -> tuple[bytes, dict[str, str]]:
    blob = batch.astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(batch.shape),
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + blob, {_HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"}


async def _one(url: str, body: tuple[bytes, dict[str, str]]) -> np.ndarray:
    """One request, fully decoded: the agent's answer must equal in-process ONNX Runtime's."""
    import aiohttp

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.post(url, data=body[0], headers=body[1]) as response,
    ):
        data = await response.read()
        if response.status != 200:
            raise RuntimeError(f"agent answered {response.status}: {data[:200]!r}")
        split = response.headers.get(_HEADER_LENGTH)
        if split is None:
            out = json.loads(data)["outputs"][0]
            return np.array(out["data"], np.float32).reshape(out["shape"])
        out = json.loads(data[: int(split)])["outputs"][0]
        return np.frombuffer(data[int(split) :], np.float32).reshape(out["shape"])


class _Budget:
    """Stop condition shared by the workers: a deadline or a request count."""

    def __init__(self, duration: float, requests: int | None) -> None:
        self.deadline = time.perf_counter() + duration if requests is None else float("inf")
        self.left = requests if requests is not None else -1
        self._lock = threading.Lock()

    def take(self) -> bool:
        if time.perf_counter() >= self.deadline:
            return False
        if self.left < 0:
            return True
        with self._lock:
            if self.left == 0:
                return False
            self.left -= 1
            return True


def _inprocess(session, batches: list[np.ndarray], args: argparse.Namespace) -> ModeResult:
    budget = _Budget(args.duration, args.requests)
    latencies: list[list[float]] = [[] for _ in range(args.concurrency)]

    def worker(index: int) -> None:
        mine, i = latencies[index], index
        while budget.take():
            feeds = {"input": batches[i % len(batches)]}
            started = time.perf_counter()
            session.run(["probabilities"], feeds)
            mine.append(time.perf_counter() - started)
            i += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _result("in-process", [t for lat in latencies for t in lat], time.perf_counter() - started)


async def _over_http(mode: str, url: str, bodies: list, args: argparse.Namespace) -> ModeResult:
    import aiohttp

    budget = _Budget(args.duration, args.requests)
    latencies: list[float] = []
    failures = 0

    async def worker(index: int) -> None:
        nonlocal failures
        connector = aiohttp.TCPConnector(limit=1)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            i = index
            while budget.take():
                body, headers = bodies[i % len(bodies)]
                started = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append(time.perf_counter() - started)
                i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{mode}: {failures} requests failed")
    return _result(mode, latencies, elapsed)


def _result(mode: str, latencies: list[float], elapsed: float) -> ModeResult:
    ms = np.asarray(latencies) * 1e3
    return ModeResult(
        mode,
        len(latencies),
        len(latencies) / elapsed,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
    )


def _summarize(results: list[ModeResult]) -> list[ModeResult]:
    summary = []
    for mode in _MODES:
        runs = [r for r in results if r.mode == mode]
        summary.append(
            ModeResult(
                mode,
                sum(r.requests for r in runs),
                statistics.median(r.throughput_rps for r in runs),
                statistics.median(r.p50_ms for r in runs),
                statistics.median(r.p99_ms for r in runs),
            )
        )
    return summary


def _print_table(command: str, args: argparse.Namespace, summary: list[ModeResult], matches: bool) -> None:
    limit = f"{args.requests} requests" if args.requests else f"{args.duration:g} s"
    print(f"command: {command}")
    print(
        f"model {args.variant}, batch {args.batch}, {args.concurrency} closed-loop clients, {limit} per run, "
        f"medians of {args.repeats} runs; agent outputs match in-process: {'yes' if matches else 'NO'}"
    )
    print(
        f"{'mode':<14}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'tput ratio':>12}{'p50 +ms':>9}{'p50 ratio':>11}"
    )
    base = summary[0]
    for r in summary:
        ratio = r.throughput_rps / base.throughput_rps
        print(
            f"{r.mode:<14}{r.requests:>10}{r.throughput_rps:>10.0f}{r.p50_ms:>9.3f}{r.p99_ms:>9.3f}"
            f"{ratio:>12.3f}{r.p50_ms - base.p50_ms:>9.3f}{r.p50_ms / base.p50_ms:>11.1f}"
        )
