"""The controller's app API on a real cluster: bad specs are refused and change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faillite.launch.cluster import LocalCluster
from faillite.launch.http import http_json
from tests.controller.cluster import small_config, start
from tests.helpers import http_request, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    config = small_config(
        token=TOKEN,
        apps=[
            {"name": "digits-a", "family": "digits", "slo_ms": 20, "node": "n1"},
            {
                "name": "resnet-a",
                "family": "ResNet",
                "variant": "resnet50-imagenet1k_v2",
                "slo_ms": 2000,
                "node": "n2",
            },
        ],
        standins={"scale": 0.02, "input_px": 32},
    )
    c = start(tmp_path_factory.mktemp("api"), config)
    yield c
    c.stop()


def state(cluster: LocalCluster) -> tuple[object, object, object]:
    url = cluster.controller_url
    return (
        http_json("GET", f"{url}/v1/apps")[1],
        http_json("GET", f"{url}/v1/plan")[1],
        http_json("GET", f"{url}/v1/routes")[1],
    )


def post(
    cluster: LocalCluster, body: object, *, content_type: str = "application/json", token: str | None = TOKEN
) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # Refusing an infeasible app can take a few planner solves (with and without kept backups,
    # then the explanation): allow for a loaded machine.
    result = http_request("POST", f"{cluster.controller_url}/v1/apps", body, headers=headers, timeout=90.0)
    return result.status, result.json()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "x1", "family": "NoSuchNet", "slo_ms": 10}, 422, "unknown family 'NoSuchNet'"),
        ({"name": "x2", "family": "ResNet", "slo_ms": 0.001}, 422, "no variant of 'ResNet' meets the SLO"),
        (
            {"name": "x3", "family": "digits", "variant": "digits-mlp-9000", "slo_ms": 20},
            422,
            "has no variant 'digits-mlp-9000'",
        ),
        (
            {"name": "x4", "family": "digits", "slo_ms": 20, "node": "n9"},
            422,
            "node 'n9' is not in the cluster",
        ),
        ({"name": "x5", "family": "digits", "slo_ms": -1}, 400, "slo_ms"),
        ({"name": "bad name!", "family": "digits", "slo_ms": 20}, 400, "name"),
        ({"name": "digits-a", "family": "digits", "slo_ms": 20}, 409, "exists already"),
        (
            {
                "apps": [
                    {
                        "name": f"big{i}",
                        "family": "ResNet",
                        "variant": "resnet152-imagenet1k_v2",
                        "slo_ms": 2000,
                    }
                    for i in range(8)
                ]
            },
            422,
            "no feasible placement",
        ),
    ],
)
def test_bad_specs_are_refused_and_change_nothing(
    cluster: LocalCluster, body: object, status: int, message: str
) -> None:
    before = state(cluster)
    got, reply = post(cluster, body)
    assert got == status, reply
    assert message in str(reply["error"])
    assert state(cluster) == before


def test_malformed_yaml_and_json_name_the_line(cluster: LocalCluster) -> None:
    before = state(cluster)
    got, reply = post(cluster, b"name: x\nfamily: [digits\n", content_type="application/yaml")
    assert got == 400 and "malformed YAML at line" in reply["error"]
    got, reply = post(cluster, b'{"name": "x",\n "family": }', content_type="application/json")
    assert got == 400 and "malformed JSON at line 2" in reply["error"]
    assert state(cluster) == before


def test_control_endpoints_need_the_token(cluster: LocalCluster) -> None:
    before = state(cluster)
    got, reply = post(cluster, {"name": "y", "family": "digits", "slo_ms": 20}, token=None)
    assert got == 401 and "Bearer" in reply["error"]
    got, reply = post(cluster, {"name": "y", "family": "digits", "slo_ms": 20}, token="wrong")
    assert got == 401
    assert http_request("DELETE", f"{cluster.controller_url}/v1/apps/digits-a").status == 401
    assert state(cluster) == before


def test_add_from_yaml_then_delete(cluster: LocalCluster) -> None:
    got, reply = post(
        cluster, b"name: digits-b\nfamily: digits\nslo_ms: 20\nnode: n3\n", content_type="application/yaml"
    )
    assert got == 201, reply
    wait_for(
        lambda: {a["name"]: a for a in cluster.apps()}["digits-b"]["state"] == "primary",
        20,
        "digits-b to be served",
    )
    deleted = http_request(
        "DELETE", f"{cluster.controller_url}/v1/apps/digits-b", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert deleted.status == 200
    assert "digits-b" not in {a["name"] for a in cluster.apps()}
    assert (
        http_request(
            "DELETE",
            f"{cluster.controller_url}/v1/apps/digits-b",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).status
        == 404
    )


def test_nodes_list_local_pids_and_urls(cluster: LocalCluster) -> None:
    nodes = {n["id"]: n for n in cluster.nodes()}
    assert set(nodes) == {"n1", "n2", "n3"}
    for node_id, agent in cluster.agents.items():
        assert nodes[node_id]["pid"] == agent.pid
        assert nodes[node_id]["url"] == agent.url
        assert nodes[node_id]["state"] == "alive"


def test_events_and_bad_query(cluster: LocalCluster) -> None:
    events = http_json("GET", f"{cluster.controller_url}/v1/events?since=0&limit=5")[1]
    assert 0 < len(events) <= 5
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    status, reply = http_json("GET", f"{cluster.controller_url}/v1/events?since=abc")
    assert status == 400 and "since" in reply["error"]


def test_suspicions_need_the_token_too(cluster: LocalCluster) -> None:
    body = {"node": "n1", "epoch": 1, "reason": "test"}
    assert http_request("POST", f"{cluster.controller_url}/v1/suspect", body).status == 401
    ok = http_request(
        "POST",
        f"{cluster.controller_url}/v1/suspect",
        {"node": "n9", "reason": "x"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert ok.status == 202 and ok.json() == {"node": "n9", "declared_dead": False}
    bad = http_request(
        "POST",
        f"{cluster.controller_url}/v1/suspect",
        b"{}",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert bad.status == 400
