"""``faillite status`` and ``GET /v1/status``: the memory split (pure) and the tables on a real cluster."""

from __future__ import annotations

import json
import signal

import pytest

from faillite.cli import main
from faillite.commands.status import render
from faillite.controller.status import memory_split
from faillite.placement import Assignment, Backup, Mode, Plan
from tests.controller.cluster import start
from tests.helpers import http_request, wait_for

SIZES = {"big": 100, "mid": 40, "small": 10}


def _asg(app: str, node: str, variant: str, backup: tuple[str, str, Mode] | None) -> Assignment:
    return Assignment(app, node, variant, None if backup is None else Backup(*backup))


def test_memory_split_reserves_for_the_worst_single_failure():
    plan = Plan(
        (
            _asg("a", "n1", "big", ("n3", "mid", Mode.COLD)),
            _asg("b", "n1", "big", ("n3", "small", Mode.COLD)),  # n1 failing needs 50 on n3
            _asg("c", "n2", "mid", ("n3", "mid", Mode.COLD)),  # n2 failing needs 40 on n3
            _asg("d", "n2", "big", ("n1", "mid", Mode.WARM)),
            _asg("e", "n3", "small", None),
        )
    )
    split = memory_split(plan, ["n1", "n2", "n3"], lambda _app, v: SIZES[v])
    assert split == {
        "n1": {"primary": 200, "warm": 40, "cold": 0},
        "n2": {"primary": 140, "warm": 0, "cold": 0},
        "n3": {"primary": 10, "warm": 0, "cold": 50},
    }
    # Once n1 is down, only n2's failure is still to be reserved for.
    assert memory_split(plan, ["n1", "n2", "n3"], lambda _a, v: SIZES[v], up=["n2", "n3"])["n3"]["cold"] == 40


def _status(node_state: str, app_mode: str) -> dict:
    node = {
        "id": "n1",
        "state": node_state,
        "epoch": 2,
        "memory_bytes": 8 << 20,
        "used_bytes": 1 << 20,
        "loaded": ["m-big"],
        "planned": {"primary": 2 << 20, "warm": 1 << 20, "cold": 1 << 20},
    }
    app = {
        "name": "door",
        "spec": {"critical": True},
        "mode": app_mode,
        "node": "n2",
        "variant": "m-small",
        "accuracy": 0.9,
        "accuracy_drop": 0.05,
        "route": [{"node": "n2", "role": "recovery"}],
        "backup": None,
    }
    return {"nodes": [node], "apps": [app], "route_version": 7}


def test_render_draws_bars_and_states():
    text = render(_status("alive", "failed_over_warm"), "http://c:7000", ascii_only=True)
    n1 = next(line for line in text.splitlines() if line.startswith("n1 "))
    assert "[########====----................]" in n1 and "alive" in n1 and "m-big" in n1
    door = next(line for line in text.splitlines() if line.startswith("door *"))
    assert "failed over (warm)" in door and "m-small on n2" in door and "90.0 % (-5.0)" in door
    assert "UNPROTECTED" in door and "n2 (recovery)" in door
    down = render(_status("dead", "recovering"), "http://c:7000", ascii_only=True)
    n1 = next(line for line in down.splitlines() if line.startswith("n1 "))
    assert " down " in n1 and "unreachable" in n1 and "m-big" not in n1
    assert "1/1 apps serving" in down and "0/1 nodes up" in down


@pytest.mark.integration
@pytest.mark.slow
def test_status_shows_a_failure(tmp_path, capsys):
    cluster = start(tmp_path)
    try:
        url = cluster.controller_url
        assert main(["status", "--controller", url, "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        nodes = {n["id"]: n for n in status["nodes"]}
        assert set(nodes) == {"n1", "n2", "n3"} and all(n["state"] == "alive" for n in nodes.values())
        assert nodes["n1"]["planned"]["primary"] > 0  # three primaries planned there
        assert sum(n["planned"]["warm"] for n in nodes.values()) > 0
        assert {a["name"]: a["mode"] for a in status["apps"]} == dict.fromkeys(
            ("cold-a", "cold-b", "warm-a", "warm-b"), "primary"
        )

        for path, kind in (
            ("/", "text/html"),
            ("/static/app.js", "javascript"),
            ("/static/style.css", "css"),
        ):
            response = http_request("GET", f"{url}{path}")
            assert response.status == 200 and kind in response.headers.get("content-type", ""), path

        assert main(["status", "--controller", url, "--ascii"]) == 0
        rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
        assert " alive " in rows["n1"] and "#" in rows["n1"]
        assert " primary " in rows["warm-a"] and "warm:" in rows["warm-a"]

        cluster.kill_node("n1", signal.SIGKILL)

        def failed_over() -> dict | None:
            assert main(["status", "--controller", url, "--json"]) == 0
            doc = json.loads(capsys.readouterr().out)
            modes = {a["name"]: a["mode"] for a in doc["apps"]}
            return doc if modes["cold-a"] == "failed_over_cold" else None

        wait_for(failed_over, 60, "cold-a to fail over")
        assert main(["status", "--controller", url]) == 0
        rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
        assert " down " in rows["n1"] and "unreachable" in rows["n1"]
        assert "failed over (warm)" in rows["warm-a"] and "failed over (warm)" in rows["warm-b"]
        assert "failed over (cold)" in rows["cold-a"] and " primary " in rows["cold-b"]
        assert "on n1" not in rows["warm-a"].split("warm:")[0]  # served elsewhere now
    finally:
        cluster.stop()


def test_status_from_an_unreachable_controller_is_one_line(capsys):
    assert main(["status", "--controller", "http://127.0.0.1:9", "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the controller" in err
