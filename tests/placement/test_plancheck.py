"""The independent checker catches each kind of broken plan."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from planner_helpers import MIB, instance

from faillite.placement import App, Node, make_plan, plan_document
from faillite.plancheck import check


@pytest.fixture
def doc() -> dict[str, Any]:
    nodes = [Node("a", 100 * MIB, domain="r"), Node("b", 100 * MIB, domain="r"), Node("c", 100 * MIB)]
    apps = [
        App("x", "F", "F-l", 100.0, critical=True, primary_node="a"),
        App("y", "F", "F-m", 100.0, primary_node="c"),
    ]
    inst = instance(nodes, apps)
    d = plan_document(inst, make_plan(inst))
    assert check(d).ok
    return d


def broken(doc: dict[str, Any], app: str, **backup: Any) -> list[str]:
    d = copy.deepcopy(doc)
    entry = next(a for a in d["apps"] if a["name"] == app)
    if backup.pop("drop", False):
        entry["backup"] = None
    else:
        entry["backup"].update(backup)
    return check(d).violations


def test_each_rule(doc: dict[str, Any]) -> None:
    assert any("fails together" in v for v in broken(doc, "x", node="a"))
    assert any("fails together" in v for v in broken(doc, "x", node="b"))  # same failure domain
    assert any("critical" in v for v in broken(doc, "x", mode="cold", expected_recovery_ms=360.0))
    assert any("no backup" in v for v in broken(doc, "y", drop=True))
    assert any(
        "larger or more accurate" in v
        for v in broken(doc, "y", variant="F-l", memory_bytes=60 * MIB, accuracy=0.8)
    )
    assert any("expected_recovery_ms" in v for v in broken(doc, "y", expected_recovery_ms=1.0))
    d = copy.deepcopy(doc)
    d["objective"] += 0.1
    assert any("objective" in v for v in check(d).violations)
    d = copy.deepcopy(doc)
    d["nodes"][2]["memory_bytes"] = 70 * MIB  # c holds y (30) + x's backup (60)
    assert any("node c" in v for v in check(d).violations)
    d = copy.deepcopy(doc)
    del d["apps"][0]["primary"]["accuracy"]
    assert check(d).violations == ["app 'x': primary must have node, variant, memory_bytes, accuracy"]
