"""Real processes on loopback, policy faillite-shared: a node dies, and a cold-backed app of it
answers first from a shared warm fallback of *another family* (same task and signature), then
from its own backup once loaded; the fallback stays loaded for the other apps it serves."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faillite.bench.load import LoadGenerator
from faillite.client.failover import Client
from faillite.launch.cluster import LocalCluster
from faillite.launch.config import ClusterConfig
from faillite.launch.http import http_json
from faillite.zoo.standins import INPUT_NAME
from tests.controller.cluster import app_states, events, until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARGIN = 1.5  # agents charge max(estimate, measured RSS growth): headroom for the estimates

# Two stand-in families of one task and signature (ImageNet-1k classifiers, 32 px input). The
# node budget (7 MiB of estimated footprints, times the margin) is chosen so that the ResNet
# apps' backups cannot all be warm, while one small MobileNet fits as a shared fallback: the
# planner then gives a ResNet app a cold backup and a MobileNet fallback (the test kills the
# node of whichever app that is).
CONFIG = {
    "nodes": [{"id": f"n{i}", "memory": int(7 * MARGIN * (1 << 20))} for i in (1, 2, 3)],
    "apps": [
        {
            "name": "res-a",
            "family": "ResNet",
            "variant": "resnet50-imagenet1k_v2",
            "slo_ms": 20,
            "node": "n1",
        },
        {"name": "mob-a", "family": "MobileNet", "slo_ms": 20, "node": "n2"},
        {
            "name": "res-b",
            "family": "ResNet",
            "variant": "resnet50-imagenet1k_v2",
            "slo_ms": 20,
            "node": "n3",
        },
    ],
    "standins": {"scale": 0.02, "input_px": 32},
    "controller": {"policy": "faillite-shared"},
    "gateway": False,
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(
        ClusterConfig.model_validate(CONFIG), tmp_path, say=lambda _m: None, memory_margin=MARGIN
    )
    try:
        c.start(timeout=120)
    except BaseException:
        c.stop()
        raise
    yield c
    c.stop()


def plan(cluster: LocalCluster) -> dict[str, Any]:
    return http_json("GET", f"{cluster.controller_url}/v1/plan")[1]


def loaded(cluster: LocalCluster, node: str) -> list[str]:
    status = http_json("GET", f"{cluster.controller_url}/v1/status")[1]
    return next(n["loaded"] for n in status["nodes"] if n["id"] == node)


async def test_cold_app_answers_from_a_shared_fallback_of_another_family_then_its_own_backup(
    cluster: LocalCluster,
) -> None:
    doc = plan(cluster)
    families = {a.name: a.family for a in cluster.config.apps}
    backups = {a["app"]: a for a in doc["plan"]}
    cross = [
        (name, sf)
        for sf in doc["shared"]
        for name in sf["apps"]
        if families[name] != sf["family"] and backups[name]["backup"]["mode"] == "cold"
    ]
    assert cross, f"expected a cold-backed app on a fallback of another family: {doc}"
    app, sf = cross[0]
    others = [a for a in sf["apps"] if a != app]
    own = backups[app]
    victim = own["primary_node"]
    assert sf["node"] != victim
    await until(lambda: sf["variant"] in loaded(cluster, sf["node"]), 30, "the shared fallback to load")
    route = next(
        r for r in http_json("GET", f"{cluster.controller_url}/v1/routes")[1]["routes"] if r["app"] == app
    )
    assert [(t["node"], t["model"]) for t in route["targets"]][1:] == [(sf["node"], sf["variant"])]

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    async with Client(cluster.controller_url) as client:
        load = LoadGenerator(client, {app: {INPUT_NAME: x}}, deadline=10.0)
        load.start()
        try:
            await until(lambda: len(load.records) > 20, 20, "steady load")
            failed_at = time.monotonic()
            cluster.kill_node(victim, signal.SIGKILL)
            await until(
                lambda: app_states(cluster)[app]["state"] == "failed_over", 30, f"{app} on its own backup"
            )
            backup = (own["backup"]["node"], own["backup"]["variant"])
            await until(
                lambda: any(
                    r.ok and (r.node, r.variant) == backup and r.end > failed_at for r in load.records
                ),
                10,
                f"{app} answered by its own backup",
            )
        finally:
            await load.stop()
    after = [r for r in load.records if r.ok and r.start > failed_at and r.node != victim]
    assert after, "answers after the failure"
    assert (after[0].node, after[0].variant) == (sf["node"], sf["variant"]), after[0]
    first_own = next(r for r in after if (r.node, r.variant) == backup)
    assert any(r.end <= first_own.end and r.variant == sf["variant"] for r in after)
    changes = [e for e in events(cluster, "route_changed") if e["app"] == app]
    reasons = [(e["variant"], e["state"], e["reason"]) for e in changes]
    assert (sf["variant"], "stepping", "shared warm fallback") in reasons, reasons
    assert (own["backup"]["variant"], "failed_over") in [(v, s) for v, s, _ in reasons], reasons
    # re-protection: the fallbacks that died with the node are re-placed on survivors
    replanned = lambda: any(e["reason"].startswith("failure of") for e in events(cluster, "plan_changed"))  # noqa: E731
    await until(replanned, 10, "the re-plan after the failure")
    new = plan(cluster)
    assert all(s["node"] != victim for s in new["shared"]), new["shared"]
    if others:  # the fallback keeps serving the others: still loaded, still planned for them
        assert sf["variant"] in loaded(cluster, sf["node"])
        assert any(o in s["apps"] for s in new["shared"] for o in others), new["shared"]
    # failback: the node returns, every app goes home, and the home plan's fallbacks are loaded again
    cluster.restart_node(victim)
    await until(
        lambda: all(a["state"] == "primary" for a in app_states(cluster).values()), 60, "failback home"
    )
    home = plan(cluster)
    assert home["shared"] == doc["shared"]
    for s in home["shared"]:
        await until(lambda s=s: s["variant"] in loaded(cluster, s["node"]), 30, f"fallback on {s['node']}")
