"""The failover client with static routes (``Client.from_table``) against real agent processes:
primary digits-mlp-64 on agent a, warm fallback digits-mlp-16 on agent b. A killed or hung
primary costs no request; a refused request is raised, never failed over."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faillite.client import Client, OipError
from faillite.client.failover import InferResult
from faillite.client.oip import encode_infer_request
from faillite.launch.process import AgentProcess
from faillite.wire import Route, RouteTable, RouteTarget
from faillite.zoo import digits
from faillite.zoo.catalog import load_builtin_family
from faillite.zoo.repository import build_repository

pytestmark = pytest.mark.integration

PRIMARY, FALLBACK = "digits-mlp-64", "digits-mlp-16"
X, Y = digits.heldout_split()
_RUNS = itertools.count()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("failover-static")
    return build_repository(
        tmp / "models", load_builtin_family("digits"), [PRIMARY, FALLBACK, "digits-mlp-4"]
    )


def _agent(repo: Path, node: str, model: str, log: str) -> Iterator[AgentProcess]:
    process = AgentProcess(node, repo, "64MiB", repo.parent / f"{log}.log", extra_args=["--load", model])
    try:
        process.start_and_wait(timeout=60)
        yield process
    finally:
        process.signal(signal.SIGCONT)  # a test may leave it stopped
        process.stop()


@pytest.fixture(scope="module")
def agent_b(repo: Path) -> Iterator[AgentProcess]:
    yield from _agent(repo, "b", FALLBACK, "b")


@pytest.fixture
def agent_a(repo: Path) -> Iterator[AgentProcess]:
    """A fresh primary, for tests that kill or stop it."""
    yield from _agent(repo, "a", PRIMARY, f"a-{next(_RUNS)}")


@pytest.fixture(scope="module")
def healthy_a(repo: Path) -> Iterator[AgentProcess]:
    """A primary shared by the tests that leave it serving."""
    yield from _agent(repo, "a", PRIMARY, "a-shared")


def routes(a: AgentProcess, b: AgentProcess, primary_model: str = PRIMARY) -> RouteTable:
    targets = (
        RouteTarget(node="a", url=a.url, model=primary_model, epoch=1, accuracy=0.98),
        RouteTarget(node="b", url=b.url, model=FALLBACK, epoch=1, accuracy=0.96, role="backup"),
    )
    return RouteTable(version=1, routes=(Route(app="digits", state="serving", targets=targets),))


async def _load(
    client: Client, results: list[InferResult], errors: list[BaseException], stop: asyncio.Event
) -> None:
    i = 0
    while not stop.is_set():
        batch = slice(i % (len(X) - 8), i % (len(X) - 8) + 8)
        try:
            result = await client.infer_detailed("digits", {digits.INPUT_NAME: X[batch]})
        except Exception as exc:  # any failure is a lost request: collected, asserted empty
            errors.append(exc)
        else:
            assert result.outputs[digits.OUTPUT_NAME].shape == (8, 10)
            results.append(result)
        i += 8


async def until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def test_sigkill_of_the_primary_under_load_loses_no_request(
    agent_a: AgentProcess, agent_b: AgentProcess
) -> None:
    results: list[InferResult] = []
    errors: list[BaseException] = []
    stop = asyncio.Event()
    async with Client.from_table(routes(agent_a, agent_b), failure_cooldown=60) as client:
        workers = [asyncio.create_task(_load(client, results, errors, stop)) for _ in range(4)]
        try:
            await until(lambda: sum(r.target.node == "a" for r in results) >= 40 or errors, "answers from a")
            agent_a.signal(signal.SIGKILL)
            killed_at = len(results)
            await until(lambda: sum(r.target.node == "b" for r in results) >= 40 or errors, "answers from b")
        finally:
            stop.set()
            await asyncio.gather(*workers)
    assert errors == []
    assert {r.target.node for r in results[:killed_at]} <= {"a", "b"}
    after = results[killed_at + 4 :]  # up to 4 were in flight at the kill and may still be a's
    assert after and all(r.target.node == "b" and r.target.model == FALLBACK for r in after)
    assert any(r.attempts == 2 for r in results[killed_at:])  # at least one saw a fail, and moved


async def test_a_hung_primary_fails_over_after_the_request_timeout(
    agent_a: AgentProcess, agent_b: AgentProcess
) -> None:
    async with Client.from_table(
        routes(agent_a, agent_b), request_timeout=0.3, failure_cooldown=60, hedging=None
    ) as client:
        assert (await client.infer_detailed("digits", {digits.INPUT_NAME: X[:8]})).target.node == "a"
        agent_a.signal(signal.SIGSTOP)
        first = await client.infer_detailed("digits", {digits.INPUT_NAME: X[:8]})
        rest = [
            await client.infer_detailed("digits", {digits.INPUT_NAME: X[i : i + 8]}) for i in range(8, 64, 8)
        ]
    assert (first.target.node, first.attempts) == ("b", 2)
    assert all((r.target.node, r.attempts) == ("b", 1) for r in rest)  # a stays marked: no more waits
    predictions = np.concatenate([r.outputs[digits.OUTPUT_NAME] for r in (first, *rest)]).argmax(axis=1)
    assert np.mean(predictions == Y[:64]) > 0.8  # b's answers are real inferences


async def test_a_hung_primary_is_hedged_to_the_fallback_then_marked_and_skipped(
    agent_a: AgentProcess, agent_b: AgentProcess
) -> None:
    # A request timeout far above the test's run time: only a hedge can answer while a is stopped.
    async with Client.from_table(
        routes(agent_a, agent_b), request_timeout=60, deadline=120, failure_cooldown=60
    ) as client:
        assert (await client.infer_detailed("digits", {digits.INPUT_NAME: X[:8]})).target.node == "a"
        stats = client.stats["digits"]
        before = dataclasses.replace(stats)  # a slow moment of a busy box may have been hedged
        agent_a.signal(signal.SIGSTOP)
        hedged = await client.infer_detailed("digits", {digits.INPUT_NAME: X[:8]})
        assert (stats.hedges_sent - before.hedges_sent, stats.hedges_won - before.hedges_won) == (1, 1)
        # a never answers within its grace: its node is marked, so requests stop hedging.
        await until(lambda: client.current_target("digits").node == "b", "a to be marked")
        after = await client.infer_detailed("digits", {digits.INPUT_NAME: X[8:16]})
    assert (hedged.target.node, hedged.attempts) == ("b", 2)
    assert (after.target.node, after.attempts) == ("b", 1)
    assert (stats.requests, stats.suspected - before.suspected) == (3, 1)
    assert stats.hedges_sent == before.hedges_sent + 1  # marked: the third request was not hedged
    assert client.total_stats() == stats


async def test_a_hedge_that_loses_is_cancelled_and_the_primary_answers(
    agent_a: AgentProcess, agent_b: AgentProcess
) -> None:
    async with Client.from_table(routes(agent_a, agent_b), request_timeout=60, deadline=120) as client:
        assert (await client.infer_detailed("digits", {digits.INPUT_NAME: X[:8]})).target.node == "a"
        stats = client.stats["digits"]
        before = dataclasses.replace(stats)
        agent_a.signal(signal.SIGSTOP)
        agent_b.signal(signal.SIGSTOP)  # the hedge cannot answer either
        try:
            pending = asyncio.create_task(client.infer_detailed("digits", {digits.INPUT_NAME: X[:8]}))
            await until(lambda: stats.hedges_sent > before.hedges_sent, "the hedge to be sent")
            agent_a.signal(signal.SIGCONT)
            await until(pending.done, "the primary to answer")
        finally:
            agent_a.signal(signal.SIGCONT)
            agent_b.signal(signal.SIGCONT)
        result = pending.result()
        assert client.current_target("digits").node == "a"  # it answered: not marked
        again = await client.infer_detailed("digits", {digits.INPUT_NAME: X[:8]})
    assert (result.target.node, result.attempts) == ("a", 2)
    assert (stats.hedges_sent - before.hedges_sent, stats.hedges_won - before.hedges_won) == (1, 0)
    assert again.target.node == "a"


async def test_a_wrong_shape_is_refused_by_the_primary_not_failed_over(
    healthy_a: AgentProcess, agent_b: AgentProcess
) -> None:
    bad = {digits.INPUT_NAME: np.zeros((2, 63), np.float32)}
    async with Client.from_table(routes(healthy_a, agent_b)) as client:
        with pytest.raises(OipError) as info:
            await client.infer("digits", bad)
        body, headers = encode_infer_request(bad, None, binary=True)
        raw = await client.infer_raw("digits", body, headers)
        assert client.current_target("digits").node == "a"  # not marked failed
    assert info.value.status == 400
    assert (raw.status, raw.target.node) == (400, "a")


async def test_a_replica_not_loaded_on_the_primary_is_a_503_and_fails_over(
    healthy_a: AgentProcess, agent_b: AgentProcess
) -> None:
    # digits-mlp-4 is in a's repository but not loaded: the agent answers 503 (not serving here).
    async with Client.from_table(routes(healthy_a, agent_b, primary_model="digits-mlp-4")) as client:
        result = await client.infer_detailed("digits", {digits.INPUT_NAME: X[:8]})
    assert (result.target.node, result.target.model, result.attempts) == ("b", FALLBACK, 2)
