"""Starting small real clusters for controller tests, and running client load against them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from faillite.launch.cluster import LocalCluster
from faillite.launch.config import ClusterConfig
from faillite.zoo import digits

# Three nodes, four digits apps: two critical (warm backups), two not (cold, progressive).
SMALL = {
    "nodes": [{"id": f"n{i}", "memory": "12MiB"} for i in (1, 2, 3)],
    "apps": [
        {"name": "warm-a", "family": "digits", "slo_ms": 20, "critical": True, "weight": 3, "node": "n1"},
        {"name": "warm-b", "family": "digits", "slo_ms": 20, "critical": True, "weight": 2, "node": "n1"},
        {"name": "cold-a", "family": "digits", "slo_ms": 20, "node": "n1"},
        {"name": "cold-b", "family": "digits", "slo_ms": 20, "node": "n2"},
    ],
    "gateway": False,
    # The controller's default detector: it adapts to the load the tests share two cores with.
}


def small_config(**changes: object) -> ClusterConfig:
    return ClusterConfig.model_validate({**SMALL, **changes})


def start(tmp_path: Path, config: ClusterConfig | None = None) -> LocalCluster:
    cluster = LocalCluster(config or small_config(), tmp_path, say=lambda _m: None)
    try:
        cluster.start(timeout=120)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def digit_inputs(cluster: LocalCluster) -> dict[str, dict[str, object]]:
    x, _ = digits.heldout_split()
    return {a.name: {digits.INPUT_NAME: x[:1]} for a in cluster.config.apps}


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def events(cluster: LocalCluster, kind: str | None = None) -> list[dict[str, object]]:
    from faillite.launch.http import http_json

    all_events = http_json("GET", f"{cluster.controller_url}/v1/events?limit=10000")[1]
    return [e for e in all_events if kind is None or e["kind"] == kind]


def app_states(cluster: LocalCluster) -> dict[str, dict[str, object]]:
    return {a["name"]: a for a in cluster.apps()}
