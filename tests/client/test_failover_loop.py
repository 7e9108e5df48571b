"""The failover client's send loop and route watch against in-process fake agents and a fake
controller (see ``fakes.py``): every reaction of the loop, without processes or timing claims."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest

from faillite.client import Client, ControllerError, OipError, Unavailable, UnknownApp
from faillite.wire import RouteTarget
from tests.client.fakes import FakeAgent, FakeController, Server, table

X = {"x": np.zeros((1, 2), np.float32)}


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class Cluster:
    def __init__(self) -> None:
        self.agents: dict[str, FakeAgent] = {}
        self.servers: list[Server] = []
        self.targets: dict[str, RouteTarget] = {}

    async def agent(self, node: str, value: float, mode: str | int = "ok", epoch: int = 1) -> RouteTarget:
        fake = FakeAgent(value, mode)
        server = Server(fake.app())
        await server.start()
        self.agents[node], self.servers = fake, [*self.servers, server]
        self.targets[node] = RouteTarget(node=node, url=server.url, model=f"model-{node}", epoch=epoch)
        return self.targets[node]

    async def controller(self, routes, token: str | None = None) -> tuple[FakeController, Server]:
        fake = FakeController(routes, token)
        server = Server(fake.app)
        await server.start()
        self.servers.append(server)
        return fake, server


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    cluster = Cluster()
    yield cluster
    for server in cluster.servers:
        await server.stop()


async def first_value(call: Awaitable) -> float:
    result = await call
    return float(result.outputs["y"][0])


async def test_requests_go_to_the_first_target_stamped_with_its_epoch(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0, epoch=7)
    b = await cluster.agent("b", 2.0)
    controller, server = await cluster.controller(table(1, cam=(a, b)))
    async with Client(server.url) as client:
        result = await client.infer_detailed("cam", X)
    assert result.target == a and result.attempts == 1
    assert result.outputs["y"].tolist() == [1.0]
    assert cluster.agents["a"].epochs == ["7"] and cluster.agents["b"].epochs == []
    assert controller.suspicions == []


@pytest.mark.parametrize("status", [409, 503])
async def test_stale_epoch_or_fenced_node_fails_over_and_is_not_reported(
    cluster: Cluster, status: int
) -> None:
    a = await cluster.agent("a", 1.0, mode=status)
    b = await cluster.agent("b", 2.0)
    dead = await cluster.agent("dead", 0.0)
    await cluster.servers[-1].stop()
    controller, server = await cluster.controller(table(1, cam=(a, b), mic=(dead, b)))
    async with Client(server.url) as client:
        result = await client.infer_detailed("cam", X)
        assert result.target == b and result.attempts == 2
        again = await client.infer_detailed("cam", X)  # a stays marked: straight to b
        assert again.target == b and again.attempts == 1
        # A node that cannot be reached is reported; the live node that refused is not.
        assert (await client.infer_detailed("mic", X)).target == b
        await asyncio.wait_for(controller.suspected.wait(), 10)
    assert len(cluster.agents["a"].epochs) == 1
    assert [(s["node"], s["epoch"]) for s in controller.suspicions] == [("dead", 1)]
    assert controller.suspicions[0]["reason"].startswith("failover: ")


@pytest.mark.parametrize("status", [400, 404, 422, 500])
async def test_refusals_are_raised_not_failed_over(cluster: Cluster, status: int) -> None:
    a = await cluster.agent("a", 1.0, mode=status)
    b = await cluster.agent("b", 2.0)
    async with Client.from_table(table(1, cam=(a, b))) as client:
        with pytest.raises(OipError) as info:
            await client.infer("cam", X)
        raw = await client.infer_raw("cam", b"{}", {"Content-Type": "application/json"})
    assert info.value.status == status and info.value.message == f"refused with {status}"
    assert (raw.status, raw.target) == (status, a)
    assert cluster.agents["b"].epochs == []


async def test_connection_refused_fails_over(cluster: Cluster) -> None:
    dead = await cluster.agent("dead", 0.0)
    await cluster.servers[-1].stop()
    b = await cluster.agent("b", 2.0)
    async with Client.from_table(table(1, cam=(dead, b))) as client:
        result = await client.infer_detailed("cam", X)
    assert result.target == b and result.attempts == 2


async def test_timeout_is_a_suspicion_and_fails_over(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0, mode="hang")
    b = await cluster.agent("b", 2.0)
    controller, server = await cluster.controller(table(1, cam=(a, b)))
    async with Client(server.url, request_timeout=0.2) as client:
        assert await first_value(client.infer_detailed("cam", X)) == 2.0
        await asyncio.wait_for(controller.suspected.wait(), 10)
    assert controller.suspicions[0]["node"] == "a"
    assert controller.suspicions[0]["reason"].startswith("suspect: ")


async def test_a_new_table_abandons_the_request_in_flight_to_the_demoted_target(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0, mode="hang")
    b = await cluster.agent("b", 2.0)
    controller, server = await cluster.controller(table(1, cam=(a, b)))
    # Timeouts far above the test's run time: only the table push can end the attempt on a.
    async with Client(server.url, request_timeout=60, deadline=120) as client:
        pending = asyncio.create_task(client.infer_detailed("cam", X))
        await asyncio.wait_for(cluster.agents["a"].started.wait(), 10)
        await controller.publish(table(2, cam=(b,)))
        result = await asyncio.wait_for(pending, 10)
        await asyncio.wait_for(cluster.agents["a"].cancelled.wait(), 10)
    assert result.target == b and result.attempts == 2
    assert controller.suspicions == []  # the controller moved it: nothing to report


async def test_an_unrelated_table_does_not_abandon_the_request(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0, mode="hang")
    b = await cluster.agent("b", 2.0)
    controller, server = await cluster.controller(table(1, cam=(a, b)))
    async with Client(server.url, request_timeout=60, deadline=120) as client:
        pending = asyncio.create_task(client.infer_detailed("cam", X))
        await asyncio.wait_for(cluster.agents["a"].started.wait(), 10)
        cluster.agents["a"].mode = "ok"  # new requests to a answer; the first one still hangs
        await controller.publish(table(2, cam=(a, b), mic=(b,)))
        await until(lambda: client.routes is not None and client.routes.version == 2, "table v2")
        # A whole second exchange lets the first request react to v2; abandoning it would
        # have retried on a, which now answers.
        assert (await client.infer_detailed("cam", X)).target == a
        assert not pending.done()
        assert len(cluster.agents["a"].epochs) == 2
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    assert cluster.agents["b"].epochs == []


async def test_recovering_app_waits_for_the_next_table(cluster: Cluster) -> None:
    b = await cluster.agent("b", 2.0)
    controller, server = await cluster.controller(table(1, cam=()))
    async with Client(server.url, deadline=60) as client:
        pending = asyncio.create_task(client.infer_detailed("cam", X))
        for _ in range(20):  # let it run until it blocks
            await asyncio.sleep(0)
        assert not pending.done()
        await controller.publish(table(2, cam=(b,)))
        result = await asyncio.wait_for(pending, 10)
    assert result.target == b


async def test_no_target_within_the_deadline_is_unavailable(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0, mode=503)
    async with Client.from_table(table(1, cam=(a,)), failure_cooldown=60) as client:
        with pytest.raises(Unavailable) as info:
            await client.infer("cam", X, deadline=0.3)
    assert info.value.app == "cam" and info.value.waited_ms >= 300
    assert info.value.last_error == "a: HTTP 503: refused with 503"
    assert len(cluster.agents["a"].epochs) == 1  # marked: not hammered while waiting


async def test_a_static_client_retries_a_marked_target_after_the_cooldown(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0, mode=503)
    async with Client.from_table(table(1, cam=(a,)), failure_cooldown=0.05, deadline=60) as client:
        pending = asyncio.create_task(client.infer_detailed("cam", X))
        await until(lambda: len(cluster.agents["a"].epochs) >= 1, "the first attempt")
        cluster.agents["a"].mode = "ok"
        result = await asyncio.wait_for(pending, 10)
    assert result.target == a and result.attempts >= 2


async def test_unknown_app(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0)
    async with Client.from_table(table(1, cam=(a,))) as client:
        with pytest.raises(UnknownApp, match="'nope'"):
            await client.infer("nope", X)
        assert client.knows("nope") is False and client.current_target("cam") == a


async def test_controller_down_at_start_then_up_then_down_again(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0)
    controller = FakeController(table(3, cam=(a,)))
    server = Server(controller.app)
    await server.start()
    await server.stop()  # we know its port; nobody listens there now
    async with Client(server.url, deadline=60) as client:
        assert client.routes is None and client.knows("cam") is None
        pending = asyncio.create_task(client.infer_detailed("cam", X))
        await server.start()
        cluster.servers.append(server)
        assert (await asyncio.wait_for(pending, 20)).target == a
        await until(lambda: client.watching, "the watch to connect")
        await server.stop()
        await until(lambda: not client.watching, "the watch to notice")
        assert (await client.infer_detailed("cam", X)).target == a  # served from the cache
        await server.start()
        await until(lambda: client.watching, "the watch to reconnect")
        b = await cluster.agent("b", 2.0)
        await controller.publish(table(4, cam=(b,)))
        await until(lambda: client.current_target("cam") == b, "table v4")


async def test_an_older_table_from_the_controller_is_ignored(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0)
    b = await cluster.agent("b", 2.0)
    controller, server = await cluster.controller(table(5, cam=(a,)))
    async with Client(server.url) as client:
        await until(lambda: client.watching, "the watch")
        await controller.publish(table(4, cam=(b,)))
        await controller.publish(table(6, mic=(b,), cam=(a,)))
        await until(lambda: client.routes is not None and client.routes.version == 6, "table v6")
        assert client.current_target("cam") == a


async def test_wrong_token_is_a_configuration_error(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0)
    _, server = await cluster.controller(table(1, cam=(a,)), token="right")
    with pytest.raises(ControllerError, match="wrong bearer token"):
        async with Client(server.url, token="wrong"):
            pass
    async with Client(server.url, token="right") as client:
        assert client.current_target("cam") == a


async def test_metadata_goes_to_the_current_target(cluster: Cluster) -> None:
    a = await cluster.agent("a", 1.0)
    async with Client.from_table(table(1, cam=(a,))) as client:
        response = await client.metadata_raw("cam")
    assert response.status == 200 and response.target == a
    assert b'"model-a"' in response.body
