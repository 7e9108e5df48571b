"""The failover client's send loop and route watch against real processes on loopback: a local
cluster (controller and three agents serving digits apps, ``tests/controller/cluster.py``) and,
where a test must hang a node and have it answer again, one agent outside the cluster.

Static tables (``Client.from_table``) and ``Client.apply`` are the product's own controller-less
mode; they pin routes to real agents where a test needs a route the controller would not publish
(a wrong epoch, a model that is not there). The clusters are read from, never assumed: which node
holds a warm backup is the planner's choice.

The read-only checks share one cluster; each test that kills, stops or restarts a process gets
its own. The pure rules behind these reactions (classification, marks, versions, demotion) are
tested exhaustively in ``test_routing.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from faillite.client import Client, OipError, Unavailable, UnknownApp
from faillite.client.oip import encode_infer_request
from faillite.launch.cluster import LocalCluster
from faillite.launch.http import http_json
from faillite.launch.process import AgentProcess
from faillite.wire import Route, RouteTable, RouteTarget
from faillite.zoo import digits
from tests.controller.cluster import events, small_config, start
from tests.controller.cluster import until as until_polled  # condition run in a thread
from tests.helpers import http_request

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A heartbeat timeout far above the client's request timeout (0.3 s in the suspicion test), so a
# client's suspicion, not the heartbeat, gets a hung node declared dead; it also keeps an agent on
# a busy test machine from fencing itself over a scheduling pause mid-test (the agent fences after
# the same timeout) and changing the epochs the tests route with.
CONFIG = small_config(controller={"heartbeat_interval_ms": 20, "heartbeat_timeout_ms": 3000})
X = {digits.INPUT_NAME: digits.heldout_split()[0][:1]}
SOLO_MODEL = "digits-mlp-64"  # in every cluster's repository, loaded by no cluster agent


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Wait for ``condition`` (evaluated on this loop, so it may look at the client) or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def cluster_routes(cluster: LocalCluster) -> RouteTable:
    return RouteTable.model_validate(http_json("GET", f"{cluster.controller_url}/v1/routes")[1])


def targets(cluster: LocalCluster, app: str) -> tuple[RouteTarget, ...]:
    route = cluster_routes(cluster).get(app)
    assert route is not None, f"the controller does not route {app}"
    return route.targets


def table(version: int, **apps: tuple[RouteTarget, ...]) -> RouteTable:
    return RouteTable(
        version=version,
        routes=tuple(Route(app=app, state="primary", targets=t) for app, t in apps.items()),
    )


def requests_seen(url: str, model: str) -> float:
    """The agent's own count of inference requests for ``model`` (its Prometheus metrics)."""
    text = http_request("GET", f"{url}/metrics").body.decode()
    match = re.search(rf'^faillite_agent_inference_requests_total{{model="{model}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def suspicions(cluster: LocalCluster) -> list[tuple[str, str]]:
    return [(str(e["node"]), str(e["reason"])) for e in events(cluster, "failure_suspected")]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """For tests that only send requests: nothing is killed, stopped, deployed or removed."""
    cluster = start(tmp_path_factory.mktemp("client-live"), CONFIG)
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """For tests that kill, stop or restart a process."""
    cluster = start(tmp_path, CONFIG)
    yield cluster
    cluster.stop()


@pytest.fixture
def solo(shared: LocalCluster) -> Iterator[AgentProcess]:
    """An agent with no controller (no epochs, no fencing): it can be stopped and answer again."""
    repo = shared.workdir / "models"
    agent = AgentProcess(
        "solo", repo, "64MiB", repo.parent / "logs" / "solo.log", extra_args=["--load", SOLO_MODEL]
    )
    try:
        agent.start_and_wait(timeout=60)
        yield agent
    finally:
        agent.signal(signal.SIGCONT)  # a test may leave it stopped
        agent.stop()


# -- one shared cluster: requests only --------------------------------------------------------


async def test_requests_carry_the_epoch_of_their_target(shared: LocalCluster) -> None:
    primary, backup = targets(shared, "warm-a")
    routed_for_next_epoch = primary.model_copy(update={"epoch": primary.epoch + 1})
    async with Client(shared.controller_url) as client:
        served = await client.infer_detailed("warm-a", X)
    async with Client.from_table(table(1, cam=(routed_for_next_epoch, backup))) as client:
        stale = await client.infer_detailed("cam", X)
        assert client.current_target("cam") == backup  # the refusing target stays marked
    # The agent answers its own epoch and refuses another (409): failed over to the backup.
    assert (served.target, served.attempts) == (primary, 1)
    assert served.outputs[digits.OUTPUT_NAME].shape == (1, 10)
    assert (stale.target, stale.attempts) == (backup, 2)


async def test_refusals_are_raised_not_failed_over(shared: LocalCluster) -> None:
    primary, backup = targets(shared, "warm-a")
    bad = {digits.INPUT_NAME: np.zeros((2, 63), np.float32)}
    async with Client(shared.controller_url) as client:
        with pytest.raises(OipError) as wrong_shape:
            await client.infer("warm-a", bad)
        body, headers = encode_infer_request(bad, None, binary=True)
        raw = await client.infer_raw("warm-a", body, headers)
        assert client.current_target("warm-a") == primary  # a refusal does not mark the target
    missing = primary.model_copy(update={"model": "no-such-model"})
    async with Client.from_table(table(1, cam=(missing, backup))) as client:
        with pytest.raises(OipError) as unknown_model:
            await client.infer("cam", X)
        raw_missing = await client.infer_raw("cam", body, headers)
    assert wrong_shape.value.status == 400 and "63" in wrong_shape.value.message
    assert (raw.status, raw.target) == (400, primary)
    assert unknown_model.value.status == 404 and "no-such-model" in unknown_model.value.message
    assert (raw_missing.status, raw_missing.target) == (404, missing)


async def test_no_target_within_the_deadline_is_unavailable_and_a_marked_target_is_not_retried(
    shared: LocalCluster,
) -> None:
    _, backup = targets(shared, "warm-a")
    # In the repository but not loaded on that node: the agent answers 503.
    not_loaded = backup.model_copy(update={"model": SOLO_MODEL})
    before = requests_seen(not_loaded.url, SOLO_MODEL)
    async with Client.from_table(table(1, cam=(not_loaded,)), failure_cooldown=60) as client:
        with pytest.raises(Unavailable) as info:
            await client.infer("cam", X, deadline=0.3)
    assert info.value.app == "cam" and info.value.waited_ms >= 300
    assert info.value.last_error is not None
    assert info.value.last_error.startswith(f"{backup.node}: HTTP 503: ")
    assert requests_seen(not_loaded.url, SOLO_MODEL) - before == 1  # marked: not hammered while waiting


async def test_the_client_follows_the_controllers_table(shared: LocalCluster) -> None:
    published = cluster_routes(shared)
    async with Client(shared.controller_url) as client:
        assert client.routes is not None and client.routes.version == published.version
        assert client.knows("warm-a") is True and client.knows("nope") is False
        with pytest.raises(UnknownApp, match="'nope'"):
            await client.infer("nope", X)
        # The watch's callback: an older or equal table never rolls the routes back.
        older = table(published.version - 1, **{"warm-a": targets(shared, "cold-b")})
        same = table(published.version, **{"warm-a": targets(shared, "cold-b")})
        assert client.apply(older) is False and client.apply(same) is False
        assert client.routes.version == published.version
        assert client.current_target("warm-a") == targets(shared, "warm-a")[0]


async def test_metadata_goes_to_the_current_target(shared: LocalCluster) -> None:
    async with Client(shared.controller_url) as client:
        response = await client.metadata_raw("warm-a")
        assert response.target == client.current_target("warm-a")
    assert response.status == 200
    assert response.target.node == targets(shared, "warm-a")[0].node
    assert json.loads(response.body)["name"] == response.target.model


# -- an agent outside the cluster, stopped and continued ---------------------------------------


async def test_a_static_client_retries_a_marked_target_after_the_cooldown(solo: AgentProcess) -> None:
    target = RouteTarget(node="solo", url=solo.url, model=SOLO_MODEL, epoch=1)
    async with Client.from_table(
        table(1, cam=(target,)), request_timeout=0.3, failure_cooldown=1.0, deadline=30
    ) as client:
        solo.signal(signal.SIGSTOP)
        pending = asyncio.create_task(client.infer_detailed("cam", X))
        await until(lambda: client.current_target("cam") is None, 10, "the hung target to be marked")
        solo.signal(signal.SIGCONT)
        # No table will come: only the mark's expiry can send the request back to the target.
        await until(pending.done, 10, "the request to be retried on the continued agent")
        result = pending.result()
    assert result.target == target and result.attempts >= 2


async def test_only_a_table_that_demotes_the_target_abandons_a_request_in_flight(
    shared: LocalCluster, solo: AgentProcess
) -> None:
    other = targets(shared, "cold-b")[0]
    hung = RouteTarget(node="solo", url=solo.url, model=SOLO_MODEL, epoch=1)
    # Timeouts far above the test's run time and no hedging: only a table can end an attempt on the
    # stopped agent.
    async with Client.from_table(
        table(1, cam=(hung, other)), request_timeout=60, deadline=120, hedging=None
    ) as client:
        assert (await client.infer_detailed("cam", X)).target == hung
        solo.signal(signal.SIGSTOP)
        kept = asyncio.create_task(client.infer_detailed("cam", X))
        await until(lambda: client._pool.in_flight == 1, 10, "the request to wait on the stopped agent")
        assert client.apply(table(2, cam=(hung, other), mic=(other,)))  # cam's route unchanged
        # A whole exchange on the same loop lets the request react to v2.
        assert (await client.infer_detailed("mic", X)).target == other
        assert not kept.done()
        solo.signal(signal.SIGCONT)
        await until(kept.done, 10, "the kept request to be answered by the continued agent")
        assert (kept.result().target, kept.result().attempts) == (hung, 1)

        solo.signal(signal.SIGSTOP)
        moved = asyncio.create_task(client.infer_detailed("cam", X))
        await until(lambda: client._pool.in_flight == 1, 10, "the request to wait on the stopped agent")
        assert client.apply(table(3, cam=(other, hung)))  # cam failed over: the stopped agent demoted
        await until(moved.done, 8, "the abandoned request to be answered by the new first target")
        assert (moved.result().target, moved.result().attempts) == (other, 2)


# -- fresh clusters: processes killed, stopped, restarted --------------------------------------


async def test_a_killed_node_fails_over_warm_waits_cold_and_a_dead_only_target_is_unavailable(
    cluster: LocalCluster,
) -> None:
    (cold,) = targets(cluster, "cold-a")
    primary, backup = targets(cluster, "warm-a")
    assert cold.node == primary.node
    async with Client(cluster.controller_url, deadline=30) as client:
        cluster.kill_node(primary.node, signal.SIGKILL)
        warm_request = asyncio.create_task(client.infer_detailed("warm-a", X))
        # cold-a has no other target: the request waits for the table that serves it elsewhere.
        cold_request = asyncio.create_task(client.infer_detailed("cold-a", X))
        await until(lambda: not cluster.agents[primary.node].alive(), 10, "the killed agent to exit")
        async with Client.from_table(table(1, cam=(primary, backup))) as static:
            refused = await static.infer_detailed("cam", X)
        async with Client.from_table(table(1, cam=(primary,))) as static:
            with pytest.raises(Unavailable) as info:
                await static.infer("cam", X, deadline=0.3)
        await until(lambda: warm_request.done() and cold_request.done(), 20, "both apps to answer")
        warm, recovered = warm_request.result(), cold_request.result()
    assert (refused.target, refused.attempts) == (backup, 2)  # connection refused: next target at once
    assert info.value.waited_ms >= 300 and info.value.last_error is not None
    assert primary.url.removeprefix("http://") in info.value.last_error
    assert warm.target.node == backup.node
    assert recovered.target.node != primary.node
    assert recovered.outputs[digits.OUTPUT_NAME].shape == (1, 10)


async def test_a_timeout_is_reported_and_the_pushed_table_frees_requests_hung_on_the_node(
    cluster: LocalCluster,
) -> None:
    primary, backup = targets(cluster, "warm-a")
    version = cluster_routes(cluster).version
    # Two routes a live node refuses: a model it has not loaded (503), and its next epoch (409, as
    # for a client holding a table from before a rejoin). Neither may be reported. (Only the 503
    # shows it: the controller drops suspicions about an epoch other than the node's own.)
    not_loaded = backup.model_copy(update={"model": SOLO_MODEL})
    next_epoch = backup.model_copy(update={"epoch": backup.epoch + 1})
    async with (
        # No hedging: this is about the timeout path (hedging is tested below).
        Client(cluster.controller_url, request_timeout=0.3, failure_cooldown=60, hedging=None) as reporter,
        Client(cluster.controller_url, request_timeout=20, deadline=15, hedging=None) as patient,
    ):
        assert reporter.apply(table(version + 1000, **{"warm-a": (not_loaded, next_epoch, primary, backup)}))
        cluster.kill_node(primary.node, signal.SIGSTOP)
        hung = asyncio.create_task(patient.infer_detailed("warm-a", X))  # in flight to the stopped node
        timed_out = await reporter.infer_detailed("warm-a", X)
        again = await reporter.infer_detailed("warm-a", X)
        await until_polled(lambda: bool(suspicions(cluster)), 10, "the controller to receive the suspicion")
        # The reporter's suspicion gets the node declared dead; the pushed table demotes it, and
        # the patient client abandons its attempt long before its 20 s request timeout.
        await until(hung.done, 8, "the hung request to be answered by the backup")
    assert (timed_out.target, timed_out.attempts) == (backup, 4)
    assert (again.target, again.attempts) == (backup, 1)  # both failed targets stay marked
    assert [(node, reason.split(":")[0]) for node, reason in suspicions(cluster)] == [
        (primary.node, "suspect")
    ]
    dead = events(cluster, "node_dead")
    assert [e["node"] for e in dead] == [primary.node] and "suspected by a client" in str(dead[0]["reason"])
    assert (hung.result().target.node, hung.result().attempts) == (backup.node, 2)


async def test_controller_down_at_start_then_up_then_down_again(cluster: LocalCluster) -> None:
    assert cluster.controller is not None
    url, port = cluster.controller_url, int(cluster.controller_url.rsplit(":", 1)[1])
    profiles = cluster.workdir / "profiles.json"
    primary = targets(cluster, "warm-a")[0]
    cluster.controller.signal(signal.SIGKILL)
    cluster.controller.stop()
    async with Client(url, deadline=60) as client:
        assert client.routes is None and client.knows("warm-a") is None and not client.watching
        pending = asyncio.create_task(client.infer_detailed("warm-a", X))
        await asyncio.to_thread(cluster.start_controller, profiles, port)
        await until(pending.done, 20, "the waiting request to be answered once routes arrive")
        assert pending.result().target == primary
        await until(lambda: client.watching, 10, "the watch to connect")

        cluster.controller.signal(signal.SIGKILL)
        cluster.controller.stop()
        await until(lambda: not client.watching, 10, "the watch to notice the controller is gone")
        assert (await client.infer_detailed("warm-a", X)).target == primary  # from the cached table

        await asyncio.to_thread(cluster.start_controller, profiles, port)
        await until(lambda: client.watching, 10, "the watch to reconnect")
        status, _ = await asyncio.to_thread(http_json, "DELETE", f"{url}/v1/apps/cold-b")
        assert status == 200
        await until(lambda: client.knows("cold-b") is False, 10, "the table without cold-b")
        with pytest.raises(UnknownApp):
            await client.infer("cold-b", X)


# -- hedged requests ----------------------------------------------------------------------------


async def test_a_stopped_primary_is_hedged_to_the_warm_backup_and_reported(cluster: LocalCluster) -> None:
    primary, backup = targets(cluster, "warm-a")
    # An attempt timeout far above the test's run time: only a hedge can answer in time.
    async with Client(cluster.controller_url, request_timeout=60, deadline=120) as client:
        for _ in range(20):  # some history for the adaptive delay
            assert (await client.infer_detailed("warm-a", X)).target == primary
        stats = client.stats["warm-a"]
        before = dataclasses.replace(stats)  # a slow moment of a busy box may have been hedged
        cluster.kill_node(primary.node, signal.SIGSTOP)
        hedged = await client.infer_detailed("warm-a", X)
        assert (stats.hedges_sent - before.hedges_sent, stats.hedges_won - before.hedges_won) == (1, 1)
        # The stopped primary does not answer a health check either: suspected and reported.
        await until_polled(lambda: bool(suspicions(cluster)), 10, "the controller to receive the suspicion")
        assert stats.suspected - before.suspected == 1
        after = await client.infer_detailed("warm-a", X)
    assert (hedged.target, hedged.attempts) == (backup, 2)
    assert after.target.node == backup.node and after.attempts == 1  # straight to the backup
    ((node, reason),) = suspicions(cluster)
    assert node == primary.node and reason.startswith("suspect: ") and "a hedge answered" in reason


async def test_the_hedge_budget_holds_under_a_sustained_slowdown(
    shared: LocalCluster, solo: AgentProcess
) -> None:
    fallback = targets(shared, "cold-b")[0]
    slow = RouteTarget(node="solo", url=solo.url, model=SOLO_MODEL, epoch=1)
    route = RouteTable(
        version=1, routes=(Route(app="cam", state="primary", targets=(slow, fallback), slo_ms=4),)
    )
    requests = 40
    # Every request starts at the stopped primary (its marks expire at once) and wants a hedge
    # after 2 ms (half the SLO); the budget allows 3 + 5 % of them (and 0.3 a second).
    async with Client.from_table(route, request_timeout=0.05, failure_cooldown=0.001, deadline=10) as client:
        solo.signal(signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answers = [await client.infer_detailed("cam", X) for _ in range(requests)]
        elapsed = loop.time() - started
        stats = client.stats["cam"]
    assert {a.target.node for a in answers} == {fallback.node}
    assert stats.requests == requests
    assert stats.hedges_refused >= 1  # the budget did refuse
    assert stats.hedges_sent <= 3 + 0.05 * requests + 3 * elapsed / 10
    assert stats.hedges_won >= 1
