"""The controller is killed and restarted under load: nothing is interrupted, nothing is lost."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faillite.bench.load import LoadGenerator
from faillite.client.failover import Client
from faillite.launch.cluster import LocalCluster
from faillite.launch.http import http_json
from tests.controller.cluster import digit_inputs, events, start, until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start(tmp_path)
    yield c
    c.stop()


def snapshot(cluster: LocalCluster) -> dict[str, object]:
    url = cluster.controller_url
    nodes = [
        {k: n[k] for k in ("id", "url", "pid", "state", "epoch", "memory_bytes", "loaded")}
        for n in http_json("GET", f"{url}/v1/nodes")[1]
    ]
    return {
        "apps": http_json("GET", f"{url}/v1/apps")[1],
        "plan": http_json("GET", f"{url}/v1/plan")[1],
        "routes": http_json("GET", f"{url}/v1/routes")[1],
        "nodes": nodes,
    }


async def test_controller_restart_keeps_serving_and_loses_nothing(cluster: LocalCluster) -> None:
    before = snapshot(cluster)
    last_event = events(cluster)[-1]["id"]
    async with Client(cluster.controller_url) as client:
        load = LoadGenerator(client, digit_inputs(cluster), deadline=10.0)
        load.start()
        try:
            await until(lambda: len(load.records) > 50, 20, "steady load")
            killed_at = time.monotonic()
            cluster.restart_controller(signal.SIGKILL)
            await until(
                lambda: {e["node"] for e in events(cluster, "node_adopted")} == {"n1", "n2", "n3"},
                30,
                "every agent to be adopted by the new controller",
            )
            await until(
                lambda: sum(1 for r in load.records if r.end > killed_at) > 50, 20, "load after restart"
            )
        finally:
            await load.stop()
    assert [r.error for r in load.records if not r.ok] == []
    assert snapshot(cluster) == before
    since = [e for e in events(cluster) if e["id"] > last_event]
    assert not [e for e in since if e["kind"] in ("load_started", "unloaded", "node_dead", "route_changed")]


async def test_warm_failover_works_from_client_caches_while_the_controller_is_down(
    cluster: LocalCluster,
) -> None:
    async with Client(cluster.controller_url) as client:
        load = LoadGenerator(client, digit_inputs(cluster), deadline=10.0)
        load.start()
        try:
            await until(lambda: len(load.records) > 50, 20, "steady load")
            assert cluster.controller is not None
            cluster.controller.signal(signal.SIGKILL)
            cluster.controller.stop()
            failed_at = time.monotonic()
            cluster.kill_node("n1", signal.SIGKILL)
            await until(
                lambda: all(
                    any(r.ok and r.app == app and r.node != "n1" and r.end > failed_at for r in load.records)
                    for app in ("warm-a", "warm-b")
                ),
                10,
                "warm apps to be answered by their backups",
            )
        finally:
            await load.stop()
    for app in ("warm-a", "warm-b"):
        assert not [r for r in load.records if r.app == app and not r.ok]
