"""Real processes on loopback: a node dies under load and every affected app recovers."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faillite.bench.load import LoadGenerator
from faillite.client.failover import Client
from faillite.launch.cluster import LocalCluster
from faillite.wire import EPOCH_HEADER
from tests.controller.cluster import app_states, digit_inputs, events, start, until
from tests.helpers import http_request

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start(tmp_path)
    yield c
    c.stop()


async def test_sigkill_under_load_recovers_every_app(cluster: LocalCluster) -> None:
    before = app_states(cluster)
    affected = sorted(n for n, a in before.items() if a["node"] == "n1")
    assert affected == ["cold-a", "warm-a", "warm-b"]
    assert {before[n]["backup"]["mode"] for n in ("warm-a", "warm-b")} == {"warm"}
    assert before["cold-a"]["backup"]["mode"] == "cold"
    async with Client(cluster.controller_url) as client:
        load = LoadGenerator(client, digit_inputs(cluster), deadline=10.0)
        load.start()
        try:
            await until(lambda: len(load.records) > 50, 20, "steady load")
            failed_at = time.monotonic()
            cluster.kill_node("n1", signal.SIGKILL)
            await until(
                lambda: all(app_states(cluster)[n]["state"] == "failed_over" for n in affected),
                30,
                "every affected app to fail over",
            )
            await until(
                lambda: all(
                    any(r.ok and r.app == n and r.node != "n1" and r.end > failed_at for r in load.records)
                    for n in affected
                ),
                10,
                "every affected app's client to be answered again",
            )
        finally:
            await load.stop()
    after_failure = [r for r in load.records if r.end >= failed_at]
    for app in ("warm-a", "warm-b"):
        assert not [r for r in after_failure if r.app == app and not r.ok], f"{app} saw failed requests"
    now = app_states(cluster)
    for app in affected:
        assert now[app]["node"] in ("n2", "n3")
    dead = events(cluster, "node_dead")
    assert [e["node"] for e in dead] == ["n1"]
    steps = [e for e in events(cluster, "progressive_step") if e["app"] == "cold-a"]
    assert [(e["step"], e["stone"]) for e in steps] == [(1, True), (2, False)]
    assert steps[0]["variant"] != steps[1]["variant"]
    recovered = {e["app"] for e in events(cluster, "app_recovered")}
    assert set(affected) <= recovered


async def test_sigstop_is_detected_by_heartbeat_timeout_and_the_node_is_fenced(cluster: LocalCluster) -> None:
    old_epoch = next(n["epoch"] for n in cluster.nodes() if n["id"] == "n2")
    old_url = cluster.agents["n2"].url
    async with Client(cluster.controller_url) as client:
        load = LoadGenerator(client, digit_inputs(cluster), deadline=10.0)
        load.start()
        try:
            await until(lambda: len(load.records) > 50, 20, "steady load")
            stopped_at = time.monotonic()
            cluster.kill_node("n2", signal.SIGSTOP)
            await until(
                lambda: app_states(cluster)["cold-b"]["state"] == "failed_over", 30, "cold-b to fail over"
            )
            dead = events(cluster, "node_dead")
            # the heartbeat timeout, or a hedging client's suspicion shortening it
            assert dead and dead[-1]["node"] == "n2"
            assert any(r in dead[-1]["reason"] for r in ("no heartbeat", "suspected by a client"))
            continued_at = time.monotonic()
            cluster.kill_node("n2", signal.SIGCONT)
            await until(
                lambda: any(
                    n["id"] == "n2" and n["state"] == "alive" and n["epoch"] > old_epoch
                    for n in cluster.nodes()
                ),
                30,
                "n2 to rejoin under a new epoch",
            )
            # A request routed for the old epoch is refused, not answered.
            stale = http_request(
                "POST",
                f"{old_url}/v2/models/digits-mlp-256x128/infer",
                {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]},
                headers={EPOCH_HEADER: str(old_epoch)},
            )
            assert stale.status in (409, 503), stale.body
            resumed_at = time.monotonic()
        finally:
            await load.stop()
    # Nothing sent to n2 after it stopped, and nothing answered after it continued, until it
    # rejoined: a request it had taken before the stop may have been answered just before it.
    from_stale = [
        r
        for r in load.records
        if r.ok and r.node == "n2" and r.end < resumed_at and (r.start > stopped_at or r.end > continued_at)
    ]
    assert not from_stale
    assert [e["node"] for e in events(cluster, "node_rejoined")] == ["n2"]


async def test_restarted_node_gets_its_apps_back_without_failed_requests(cluster: LocalCluster) -> None:
    home = {n: a["node"] for n, a in app_states(cluster).items()}
    async with Client(cluster.controller_url) as client:
        load = LoadGenerator(client, digit_inputs(cluster), deadline=10.0)
        load.start()
        try:
            await until(lambda: len(load.records) > 50, 20, "steady load")
            cluster.kill_node("n1", signal.SIGKILL)
            await until(
                lambda: all(
                    a["state"] == "failed_over" for n, a in app_states(cluster).items() if home[n] == "n1"
                ),
                30,
                "failover",
            )
            restarted_at = time.monotonic()
            await asyncio.to_thread(cluster.restart_node, "n1")
            await until(cluster.deployed, 60, "every app back on its primary and protected")
            await until(
                lambda: all(
                    any(r.ok and r.app == n and r.node == "n1" and r.end > restarted_at for r in load.records)
                    for n, node in home.items()
                    if node == "n1"
                ),
                10,
                "clients to be answered from n1 again",
            )
        finally:
            await load.stop()
    assert {n: a["node"] for n, a in app_states(cluster).items()} == home
    during = [r for r in load.records if r.end >= restarted_at]
    assert during and not [r.error for r in during if not r.ok]
    assert any(e["kind"] == "failback" for e in events(cluster))
