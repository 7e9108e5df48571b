"""The processes of one ``faillite bench agent`` run, and the latency probe of each path.

``Setup`` starts the agent (and optionally a second agent from other code, the gateway and
Triton) and stops them all; whatever cannot start is recorded in ``skipped`` with the reason.
``measure_latency`` checks that every path answers with in-process ONNX Runtime's outputs,
then measures them all in the same interleaved rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from faillite.bench.agent.bodies import HEADER_LENGTH, Body, binary_body, decode_answer, json_body
from faillite.bench.agent.latency import LatencyResult, Probe, http_probe, measure, sync_probe
from faillite.bench.agent.servers import Gateway, TritonServer, find_triton, static_routes
from faillite.bench.cputime import cpu_clock, with_children
from faillite.launch.process import AgentProcess, LaunchError, ManagedProcess

__all__ = ["APP", "Setup", "measure_latency"]

APP = "digits"  # the app name the client and the gateway route to the agent
_LOOP = re.compile(r"event loop: (\w+)")
# Which server's CPU a mode is charged with (by mode prefix; the rest: the agent).
_SERVERS = (
    ("in-process", None),
    ("baseline-", "baseline"),
    ("gateway-", "gateway"),
    ("tc-triton-", "triton"),
)


class Setup:
    def __init__(self, workdir: Path, manifest: Any, args: argparse.Namespace, model_path: Path) -> None:
        self.workdir, self.manifest, self.args, self.model_path = workdir, manifest, args, model_path
        self.variant: str = args.variant
        self.skipped: dict[str, str] = {}
        self.agent_url = ""
        self.baseline_url: str | None = None
        self.gateway_url: str | None = None
        self.triton_url: str | None = None
        self.event_loop = "unknown"
        self.pids: dict[str, Callable[[], list[int]]] = {}  # server -> its processes (for CPU time)
        self._running: list[ManagedProcess | Gateway | TritonServer] = []

    def __enter__(self) -> Setup:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self._running):
            process.stop()
        self._running.clear()

    def _start(self) -> None:
        from faillite.zoo.repository import build_repository

        repo = build_repository(self.workdir / "models", self.manifest, [self.variant])
        agent = AgentProcess(
            "bench", repo, "1GiB", self.workdir / "agent.log", extra_args=["--load", self.variant]
        )
        self._running.append(agent)
        self.agent_url = agent.start_and_wait(timeout=60)
        self.pids["agent"] = lambda: [agent.pid]
        loop = _LOOP.search(agent.log_text())
        self.event_loop = loop.group(1) if loop else "asyncio"
        if self.args.baseline_code is not None:
            baseline = AgentProcess(
                "baseline", repo, "1GiB", self.workdir / "baseline.log", extra_args=["--load", self.variant]
            )
            assert baseline.env is not None
            baseline.env["PYTHONPATH"] = str(self.args.baseline_code.resolve())
            baseline.env["PYTHONSAFEPATH"] = "1"  # `-m` would put the current directory first
            self._running.append(baseline)
            self.baseline_url = baseline.start_and_wait(timeout=60)
            self.pids["baseline"] = lambda: [baseline.pid]
        if self.args.no_gateway:
            self.skipped["gateway"] = "--no-gateway"
        else:
            (self.workdir / "gateway").mkdir()
            gateway = Gateway(static_routes(APP, self.agent_url, self.variant), self.workdir / "gateway")
            self._running.append(gateway)
            self.gateway_url = gateway.start()
            self.pids["gateway"] = lambda: [gateway.process.pid, agent.pid]
        self._start_triton()

    def _start_triton(self) -> None:
        if self.args.no_triton:
            self.skipped["triton"] = "--no-triton"
            return
        root, why = find_triton()
        if root is None:
            self.skipped["triton"] = why
            return
        triton = TritonServer(root, self.workdir / "triton", self.variant, self.model_path)
        try:
            self.triton_url = triton.start()
        except LaunchError as exc:
            self.skipped["triton"] = str(exc)
            return
        self._running.append(triton)
        self.pids["triton"] = lambda: with_children(triton.process.pid)  # the Python stub is a child


def _charged(probes: list[Probe], setup: Setup) -> list[Probe]:
    """Each probe with the CPU clock of the server(s) that answer it."""
    out = []
    for probe in probes:
        server = next((name for prefix, name in _SERVERS if probe.mode.startswith(prefix)), "agent")
        pids = setup.pids.get(server) if server else None
        out.append(dataclasses.replace(probe, cpu=cpu_clock(pids)) if pids else probe)
    return out


async def measure_latency(
    setup: Setup, session: Any, batch: np.ndarray, expected: np.ndarray, requests: int, rounds: int
) -> tuple[list[LatencyResult], bool]:
    """Every path's probe, checked against ``expected``, measured in the same rounds."""
    import aiohttp

    from faillite.client.failover import Client

    feeds = {"input": batch}
    jbody, bbody = json_body(batch), binary_body(batch)
    matches = True

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        Client.from_table(static_routes(APP, setup.agent_url, setup.variant)) as client,
    ):

        async def check(url: str, body: Body) -> None:
            nonlocal matches
            async with http.post(url, data=body[0], headers=body[1]) as response:
                data = await response.read()
                ok = response.status == 200
                got = decode_answer(data, response.headers.get(HEADER_LENGTH)) if ok else None
            matches = matches and got is not None and bool(np.allclose(got, expected, atol=1e-6))

        probes = [sync_probe("in-process", lambda: session.run(["probabilities"], feeds), what="session.run")]
        for prefix, url in (("", setup.agent_url), ("baseline-", setup.baseline_url)):
            if url is None:
                continue
            infer = f"{url}/v2/models/{setup.variant}/infer"
            health = f"{prefix}health"
            probes += [
                http_probe(health, http, "GET", f"{url}/v2/health/live", what="GET /v2/health/live, aiohttp"),
                http_probe(
                    f"{prefix}agent-json", http, "POST", infer, jbody, health, "infer, JSON, raw post"
                ),
                http_probe(
                    f"{prefix}agent-binary", http, "POST", infer, bbody, health, "infer, binary, raw post"
                ),
            ]
            await check(infer, jbody)
            await check(infer, bbody)

        async def client_infer() -> None:
            await client.infer(APP, feeds)

        async def client_raw() -> None:
            response = await client.infer_raw(APP, bbody[0], bbody[1])
            if response.status != 200:
                raise RuntimeError(f"client-raw: the agent answered {response.status}")

        answer = await client.infer(APP, feeds)
        matches = matches and bool(np.allclose(answer["probabilities"], expected, atol=1e-6))
        probes += [
            Probe("client", client_infer, "agent-binary", "Client.infer: numpy in and out, binary"),
            Probe("client-raw", client_raw, "agent-binary", "Client.infer_raw of the agent-binary bytes"),
        ]
        if setup.gateway_url is not None:
            infer = f"{setup.gateway_url}/v2/models/{APP}/infer"
            probes += [
                http_probe(
                    "gateway-health",
                    http,
                    "GET",
                    f"{setup.gateway_url}/v2/health/live",
                    None,
                    "health",
                    "GET /v2/health/live of the gateway, aiohttp",
                ),
                http_probe(
                    "gateway-binary", http, "POST", infer, bbody, "agent-binary", "infer via the gateway"
                ),
            ]
            await check(infer, bbody)
        tc_clients, tc_probes, tc_ok = _tritonclient_probes(setup, batch, expected)
        probes += tc_probes
        matches = matches and tc_ok
        try:
            results = await measure(
                _charged(probes, setup), requests, rounds, warmup=10 if requests <= 200 else 50
            )
        finally:
            for tc in tc_clients:
                tc.close()
    return results, matches


def _tritonclient_probes(
    setup: Setup, batch: np.ndarray, expected: np.ndarray
) -> tuple[list[Any], list[Probe], bool]:
    try:
        import tritonclient.http as tc
    except ImportError:
        setup.skipped["tritonclient"] = "tritonclient is not installed (pip install 'tritonclient[http]')"
        return [], [], True
    clients, probes, ok = [], [], True
    for name, url in (("agent", setup.agent_url), ("triton", setup.triton_url)):
        if url is None:
            continue
        client = tc.InferenceServerClient(
            url.removeprefix("http://"), connection_timeout=10, network_timeout=30
        )
        clients.append(client)
        health = f"tc-{name}-health"
        probes.append(sync_probe(health, client.is_server_live, what=f"tritonclient is_server_live, {name}"))
        for binary in (True, False):
            inp = tc.InferInput("input", list(batch.shape), "FP32")
            inp.set_data_from_numpy(batch, binary_data=binary)
            out = tc.InferRequestedOutput("probabilities", binary_data=binary)

            def call(inp: Any = inp, out: Any = out, client: Any = client) -> Any:
                return client.infer(setup.variant, [inp], outputs=[out])

            got = call().as_numpy("probabilities")
            ok = ok and got is not None and bool(np.allclose(got, expected, atol=1e-6))
            kind = "binary" if binary else "json"
            probes.append(
                sync_probe(f"tc-{name}-{kind}", call, health, f"tritonclient infer, {kind}, {name}")
            )
    return clients, probes, ok
