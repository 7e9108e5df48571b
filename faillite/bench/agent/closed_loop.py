"""Closed-loop throughput: ``concurrency`` clients each send the next request as soon as the
previous one is answered, in-process (threads calling ``session.run``) or over HTTP (aiohttp
clients, each with its own keep-alive connection)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faillite.bench.agent.bodies import Body

__all__ = ["MODES", "ModeResult", "in_process", "over_http", "summarize"]

MODES = ("in-process", "agent-json", "agent-binary")


@dataclass(frozen=True)
class ModeResult:
    mode: str
    requests: int
    throughput_rps: float
    p50_ms: float
    p99_ms: float


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


def in_process(
    session, batches: Sequence[np.ndarray], concurrency: int, duration: float, requests: int | None
) -> ModeResult:
    budget = _Budget(duration, requests)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]

    def worker(index: int) -> None:
        mine, i = latencies[index], index
        while budget.take():
            feeds = {"input": batches[i % len(batches)]}
            started = time.perf_counter()
            session.run(["probabilities"], feeds)
            mine.append(time.perf_counter() - started)
            i += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _result("in-process", [t for lat in latencies for t in lat], time.perf_counter() - started)


async def over_http(
    mode: str, url: str, bodies: Sequence[Body], concurrency: int, duration: float, requests: int | None
) -> ModeResult:
    import aiohttp

    budget = _Budget(duration, requests)
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
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
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


def summarize(results: Sequence[ModeResult]) -> list[ModeResult]:
    """Per mode, medians over the repeats (requests summed)."""
    summary = []
    for mode in MODES:
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
