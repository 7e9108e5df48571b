"""The health check of a primary that lost to a hedge: its timeout, and one per node at a time
(against a real loopback server that accepts requests and never answers, as a SIGSTOPped agent's
kernel does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from faillite.client import Client
from faillite.client.exchange import probe_timeout
from faillite.client.hedging import AppHedging, HedgeConfig
from faillite.wire import Route, RouteTable, RouteTarget


def test_the_probe_timeout_is_floored_above_a_scheduling_hiccup_and_bounded_by_the_attempt() -> None:
    assert probe_timeout(0.001, 0.5) == pytest.approx(0.020)  # a fast app: the 20 ms floor
    assert probe_timeout(0.010, 0.5) == pytest.approx(0.040)  # 4 hedge delays
    assert probe_timeout(0.025, 0.05) == pytest.approx(0.05)  # never longer than an attempt
    assert probe_timeout(0.001, 0.01) == pytest.approx(0.01)


class Silent:
    """Accepts connections, reads what comes, never answers; counts the bytes' request lines."""

    def __init__(self) -> None:
        self.request_lines: list[bytes] = []
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if line.startswith((b"GET ", b"POST ")):
                    self.request_lines.append(line)
        finally:
            writer.close()


@pytest.fixture
async def silent() -> AsyncIterator[Silent]:
    server = Silent()
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    yield server
    listener.close()


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_one_health_check_per_node_however_many_hedges_win(silent: Silent) -> None:
    hung = RouteTarget(node="hung", url=silent.url, model="m", epoch=1)
    other = RouteTarget(node="other", url="http://127.0.0.1:9", model="m", epoch=1)
    routes = RouteTable(
        version=1,
        routes=(
            Route(app="cam", state="primary", targets=(hung, other)),
            Route(app="mic", state="primary", targets=(hung, other)),
        ),
    )
    async with Client.from_table(routes, failure_cooldown=30) as client:
        exchange = client._exchange
        state = AppHedging(HedgeConfig())
        for app in ("cam", "mic", "cam", "cam", "mic"):  # five hedges won against one node
            exchange._check_loser(app, state, hung, 0.3)
        assert exchange.probing == {"hung"}
        await until(lambda: not exchange.probing, "the health check to give up")
        assert silent.request_lines == [b"GET /v2/health/live HTTP/1.1\r\n"]
        assert state.stats.suspected == 1
        # No answer: the node is marked for every app, so the next requests skip it.
        assert client.current_target("cam") == other and client.current_target("mic") == other
