"""One client, one request in flight: the latency of each path, in interleaved rounds.

Every mode is a ``Probe``: one request, awaited to its last byte, raising if the answer is not
a 200. ``measure`` warms each probe up, then runs ``rounds`` rounds; in each round every probe
sends its share of requests back to back, so slow drifts of a shared machine (other processes,
frequency changes) reach every mode alike. Each mode is compared with a *baseline* mode
measured in the same rounds: the difference of the p50s is the cost of what the mode adds
(the agent's inference over its health round trip, the client library over a raw post of the
same bytes, the gateway's hop, ...). Beside the wall-clock latency, each block of requests
is charged the CPU time its server process(es) used (``cpu``: user + system seconds, from
``faillite.bench.cputime``), which stays meaningful when other processes load the machine.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faillite.bench.agent.bodies import Body

__all__ = ["LatencyResult", "Probe", "http_probe", "measure", "sync_probe"]


@dataclass(frozen=True)
class Probe:
    mode: str
    send: Callable[[], Awaitable[None]]
    baseline: str | None = None  # the mode this one's p50 is compared with
    what: str = ""  # one line for the report
    cpu: Callable[[], float] | None = None  # CPU seconds used so far by the server answering


@dataclass(frozen=True)
class LatencyResult:
    mode: str
    requests: int
    p50_ms: float
    p99_ms: float
    baseline: str | None
    over_baseline_ms: float | None  # p50 minus the baseline's p50, same run
    what: str
    server_cpu_us: float | None = None  # the server's CPU time per request (user + system)


def http_probe(
    mode: str,
    session: Any,
    method: str,
    url: str,
    body: Body | None = None,
    baseline: str | None = None,
    what: str = "",
) -> Probe:
    """A raw aiohttp request on a keep-alive session (pre-encoded body, nothing decoded)."""
    data, headers = body if body is not None else (None, None)

    async def send() -> None:
        async with session.request(method, url, data=data, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{mode}: {method} {url} answered {response.status}")

    return Probe(mode, send, baseline, what)


def sync_probe(mode: str, call: Callable[[], object], baseline: str | None = None, what: str = "") -> Probe:
    """A blocking call (in-process ONNX Runtime, tritonclient): run on the loop's thread, which
    has nothing else to do while one request is in flight."""

    async def send() -> None:
        call()

    return Probe(mode, send, baseline, what)


async def measure(
    probes: Sequence[Probe], requests: int, rounds: int, warmup: int = 20
) -> list[LatencyResult]:
    """``requests`` per probe, split over ``rounds`` interleaved rounds."""
    samples: dict[str, list[float]] = {p.mode: [] for p in probes}
    cpu: dict[str, float] = {p.mode: 0.0 for p in probes}
    for probe in probes:
        for _ in range(warmup):
            await probe.send()
    per_round = [requests // rounds + (1 if r < requests % rounds else 0) for r in range(rounds)]
    clock = time.perf_counter
    for count in per_round:
        for probe in probes:
            mine, send = samples[probe.mode], probe.send
            cpu_before = probe.cpu() if probe.cpu is not None else 0.0
            for _ in range(count):
                started = clock()
                await send()
                mine.append(clock() - started)
            if probe.cpu is not None:
                cpu[probe.mode] += probe.cpu() - cpu_before
    return _results(probes, samples, cpu)


def _results(
    probes: Sequence[Probe], samples: Mapping[str, list[float]], cpu: Mapping[str, float]
) -> list[LatencyResult]:
    p50 = {mode: float(np.percentile(np.asarray(s) * 1e3, 50)) for mode, s in samples.items()}
    results = []
    for probe in probes:
        ms = np.asarray(samples[probe.mode]) * 1e3
        over = p50[probe.mode] - p50[probe.baseline] if probe.baseline in p50 else None
        results.append(
            LatencyResult(
                probe.mode,
                len(ms),
                p50[probe.mode],
                float(np.percentile(ms, 99)),
                probe.baseline if probe.baseline in p50 else None,
                over,
                probe.what,
                None if probe.cpu is None else cpu[probe.mode] / len(ms) * 1e6,
            )
        )
    return results
