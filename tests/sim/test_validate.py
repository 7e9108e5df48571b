"""faillite sim validate: the comparison on hand-made outcomes, and one real small validation run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from faillite.launch.config import load_cluster_config
from faillite.sim.failures import FailureSpecError
from faillite.sim.real import RealRun, default_victim, run_real
from faillite.sim.validate import (
    MTTR_TOLERANCE,
    Outcome,
    Side,
    ValidationReport,
    against,
    compare,
    failure_nodes,
    mttr_ratio,
    outcome,
    render,
    sim_side,
)
from faillite.sim.validate.calibrate import measured_timings
from faillite.sim.validate.measure import measure_profiles, run_variants
from faillite.sim.validate.run import sim_label, with_policy
from faillite.zoo.catalog import estimated_family_profiles

DEMO = Path(__file__).resolve().parents[2] / "faillite" / "demo" / "cluster.yaml"

PLAN = [
    {
        "app": "a",
        "primary_node": "n2",
        "primary_variant": "big",
        "backup": {"node": "n3", "variant": "small", "mode": "warm"},
    },
    {"app": "b", "primary_node": "n3", "primary_variant": "big", "backup": None},
]
SHARED = [{"node": "n3", "family": "f", "variant": "tiny", "apps": ["b", "a"]}]


def _side(name: str, **changes: object) -> Side:
    apps = {
        "a": Outcome("a", True, "n2", "small", "n2", "big", 40.0),
        "b": Outcome("b", True, "n3", "big", "n3", "big", 20.0),
    }
    for key, value in changes.items():
        app, field = key.split("__")
        apps[app] = Outcome(**{**apps[app].__dict__, field: value})
    return Side(name, apps, PLAN, SHARED)


def test_identical_sides_match() -> None:
    assert compare(_side("sim"), _side("real")) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"a__recovered": False}, "a: recovered in sim False, in real True"),
        ({"a__first_variant": "big"}, "a: first variant sim big, real small"),
        ({"b__settled_node": "n1"}, "b: settled node sim n1, real n3"),
        ({"b__settled_variant": "small"}, "b: settled variant sim small, real big"),
    ],
)
def test_each_outcome_mismatch_is_named(change: dict[str, object], expected: str) -> None:
    assert compare(_side("sim", **change), _side("real")) == [expected]


def test_mttr_is_not_part_of_the_match_but_of_the_ratio() -> None:
    sim, real = _side("sim", a__mttr_ms=80.0), _side("real")
    assert compare(sim, real) == []
    assert mttr_ratio(sim, real) == pytest.approx((80 + 20) / 2 / 30, abs=1e-4)


def test_ratio_counts_recovered_apps_only_and_none_without_any() -> None:
    sim = _side("sim", a__recovered=False, a__mttr_ms=None)
    assert sim.mttr_mean_ms() == 20.0
    nothing = _side("sim", a__recovered=False, b__recovered=False)
    assert mttr_ratio(nothing, _side("real")) is None


def test_placement_and_shared_fallback_mismatches() -> None:
    moved = [dict(PLAN[0], backup={"node": "n1", "variant": "small", "mode": "cold"}), PLAN[1]]
    sim = Side("sim", _side("sim").apps, moved, [])
    diffs = compare(sim, _side("real"))
    assert diffs == [
        "a: final placement sim big@n2, cold backup small@n1; real big@n2, warm backup small@n3",
        "shared fallback tiny@n3 for a, b only in real",
    ]


def test_affected_sets_differ() -> None:
    real = _side("real")
    sim = Side("sim", {"a": real.apps["a"]}, PLAN, SHARED)
    assert compare(sim, real) == ["affected apps differ: only in sim -, only in real ['b']"]


def test_report_json_and_render() -> None:
    sim, real = _side("sim", b__settled_variant="small", b__mttr_ms=30.0), _side("real")
    report = ValidationReport(
        "c.yaml", {"nodes": ["n1"], "kind": "crash"}, "faillite", 0, sim, real, compare(sim, real)
    )
    doc = json.loads(json.dumps(report.to_json()))
    assert {"match", "mttr_ratio", "sim", "real", "differences"} <= set(doc)
    assert doc["match"] is False and doc["differences"] == ["b: settled variant sim small, real big"]
    assert doc["mttr_ratio"] == pytest.approx(35 / 30, abs=1e-4)
    assert doc["mttr_within_25pct"] is (abs(35 / 30 - 1) <= MTTR_TOLERANCE)
    text = render(report)
    assert "big@n3 *" in text and "MISMATCH (1)" in text and "ratio 1.17" in text


def test_default_victim_most_apps_then_cold_then_id() -> None:
    apps = [
        {"node": "n1", "backup": {"mode": "warm"}},
        {"node": "n1", "backup": {"mode": "cold"}},
        {"node": "n2", "backup": {"mode": "cold"}},
        {"node": "n2", "backup": None},
        {"node": "n3", "backup": None},
    ]
    assert default_victim(apps, ["n1", "n2", "n3"]) == "n2"
    assert default_victim(apps[:2] + apps[4:], ["n1", "n3"]) == "n1"


def _write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_failure_spec_is_one_event(tmp_path: Path) -> None:
    doc = {
        "nodes": [{"id": f"n{i}", "memory": "8MiB", "domain": "r1" if i < 3 else "r2"} for i in range(1, 5)],
        "apps": [],
    }
    config = load_cluster_config(_write(tmp_path, doc))
    assert failure_nodes(config, None) is None
    assert failure_nodes(config, "node:n2") == (("n2",), "crash")
    assert failure_nodes(config, "domain:r1,kind=hang") == (("n1", "n2"), "hang")
    with pytest.raises(FailureSpecError, match="one failure event"):
        failure_nodes(config, "node:n1+node:n2,at=5")
    with pytest.raises(FailureSpecError, match="repair"):
        failure_nodes(config, "node:n1,repair=5")


SMALL = {
    "nodes": [{"id": f"n{i}", "memory": "5MiB"} for i in (1, 2, 3)],
    "apps": [
        {"name": "door", "family": "digits", "slo_ms": 20, "critical": True, "weight": 3, "node": "n1"},
        {"name": "meter", "family": "digits", "slo_ms": 20, "node": "n1"},
        {"name": "forms", "family": "digits", "slo_ms": 20, "node": "n2"},
        {"name": "mail", "family": "digits", "slo_ms": 20, "node": "n3"},
    ],
    "gateway": False,
}


@pytest.mark.integration
def test_real_small_validation_detects_a_policy_mismatch(tmp_path: Path) -> None:
    """A real 3-node cluster (controller and agent processes, the digits ONNX models; about 20 s):
    n1, which serves two apps (one warm-backed, one cold), is SIGKILLed. The same run compared
    with the simulator under the cluster's policy gives a complete report; compared with a
    simulator run under policy ``none`` (no backups planned), the placements must differ."""
    config = load_cluster_config(_write(tmp_path, SMALL))
    run = run_real(config, tmp_path / "work", nodes=("n1",))
    assert run.failed_nodes == ("n1",)
    assert sorted(run.apps) == ["door", "meter"]
    assert all(a["recovered"] and a["mttr_ms"] is not None for a in run.apps.values())
    # so a simulator planning no backups (policy none) must differ on the failed apps' placements
    assert any(p["backup"] is not None for p in run.plan_after["plan"] if p["app"] in run.apps)

    report = against(run, config="small.yaml", seed=0)
    doc = json.loads(json.dumps(report.to_json()))
    assert {"match", "mttr_ratio", "sim", "real", "differences"} <= set(doc)
    assert doc["match"] is (doc["differences"] == [])
    assert set(doc["sim"]["apps"]) == set(doc["real"]["apps"]) == {"door", "meter"}
    assert doc["real"]["mttr_mean_ms"] == run.mttr_mean_ms()

    other = against(run, config="small.yaml", seed=0, policy="none")
    assert not other.match
    assert any("final placement" in d for d in other.differences)
    assert "MISMATCH" in render(other)


def test_measured_timings_from_events() -> None:
    events = [
        {"kind": "node_dead", "node": "n1", "t_ms": 18.0},
        {
            "kind": "route_changed",
            "app": "a",
            "node": "n2",
            "variant": "v",
            "reason": "warm backup",
            "t_ms": 19.0,
        },
        {
            "kind": "load_started",
            "app": "b",
            "node": "n3",
            "variant": "w",
            "reason": "planned cold backup",
            "t_ms": 30.0,
        },
        {"kind": "load_finished", "app": "b", "node": "n3", "variant": "w", "ms": 39.5, "t_ms": 70.0},
        {
            "kind": "route_changed",
            "app": "b",
            "node": "n3",
            "variant": "w",
            "reason": "planned cold backup",
            "t_ms": 70.5,
        },
        # a refused re-protection load, retried: the retry is the one timed
        {
            "kind": "load_started",
            "app": "c",
            "node": "n2",
            "variant": "x",
            "reason": "warm backup",
            "t_ms": 300.0,
        },
        {"kind": "load_failed", "app": "c", "node": "n2", "variant": "x", "t_ms": 304.0},
        {
            "kind": "load_started",
            "app": "c",
            "node": "n2",
            "variant": "x",
            "reason": "warm backup",
            "t_ms": 1300.0,
        },
        {"kind": "load_finished", "app": "c", "node": "n2", "variant": "x", "ms": 9.0, "t_ms": 1310.0},
    ]
    t = measured_timings(events, ("n1",))
    assert t["node_dead"] == 18.0
    assert t["warm_switch"] == {"a": 1.0}
    assert t["recovery_plan"] == 12.0  # node_dead -> the first load not for a warm backup
    assert t["publish"] == [0.5]
    assert [(x["app"], x["ms"], x["agent_ms"]) for x in t["loads"]] == [("b", 40.0, 39.5), ("c", 10.0, 9.0)]


def test_sim_label_keeps_the_progressive_setting(tmp_path: Path) -> None:
    doc = {"nodes": [{"id": "n1", "memory": "8MiB"}, {"id": "n2", "memory": "8MiB"}]}
    config = load_cluster_config(_write(tmp_path, doc))
    assert sim_label(config) == "faillite"
    assert sim_label(with_policy(config, "full-cold")) == "full-cold"
    static = config.model_copy(
        update={"controller": config.controller.model_copy(update={"progressive": False})}
    )
    assert sim_label(static) == "faillite-no-progressive"
    with pytest.raises(ValueError, match="no policy 'full-warm' with progressive=False"):
        sim_label(with_policy(static, "full-warm"))


def test_outcome_and_sim_side_from_benchmark_records() -> None:
    record = {
        "app": "a",
        "recovered": True,
        "mttr_ms": 31.9,
        "settled_variant": "big",
        "steps": [
            {"variant": "small", "node": "n4", "at_ms": 31.9},
            {"variant": "big", "node": "n4", "at_ms": 43.4},
        ],
        "phases_ms": {"detect": 20.0, "decide": 7.0, "load": 2.8, "publish": 0.0, "answer": 2.1},
    }
    o = outcome(record)
    assert (o.first_variant, o.first_node, o.settled_variant, o.settled_node) == ("small", "n4", "big", "n4")
    doc = {
        "injections": [{"node": "n1", "apps": [record]}],
        "app_outcomes": {"a": {"placement": {k: v for k, v in PLAN[0].items() if k != "app"}}},
    }
    side = sim_side(doc)
    assert side.apps == {"a": o}
    assert side.plan == [PLAN[0]] and side.shared == []
    bare = {"app": "b", "recovered": False, "mttr_ms": None, "settled_variant": None, "steps": []}
    unrecovered = outcome(bare)
    assert (unrecovered.recovered, unrecovered.first_node, unrecovered.settled_node) == (False, None, None)


def test_timing_profiles_measure_the_runs_models_here(tmp_path: Path) -> None:
    """``run_variants``: every model the real run's plans name or its agents loaded, with its
    family; ``measure_profiles`` profiles them with faillite's profiler (the digits family's
    shipped models: a real measurement, a few seconds)."""
    config = load_cluster_config(DEMO)
    estimated = [
        p for p in estimated_family_profiles("digits") if p.variant in ("digits-mlp-16", "digits-mlp-64")
    ]
    plan = [{"app": "x", "primary_node": "n1", "primary_variant": "digits-mlp-64", "backup": None}]
    after = [
        {
            "app": "x",
            "primary_node": "n2",
            "primary_variant": "digits-mlp-64",
            "backup": {"node": "n1", "variant": "digits-mlp-16", "mode": "cold"},
        }
    ]
    run = RealRun(
        config=config,
        failed_nodes=("n1",),
        kind="crash",
        profiles=tuple(estimated),
        nodes=[],
        registered=[],
        plan_before={"plan": plan, "shared": []},
        plan_after={"plan": after, "shared": []},
        apps_after={},
        apps={},
        events=[
            {"kind": "load_started", "variant": "digits-mlp-16", "t_ms": 1.0},
            {"kind": "node_dead", "t_ms": 0.5},
        ],
        load_ms={},
    )
    assert run_variants(run) == {("digits", "digits-mlp-16"), ("digits", "digits-mlp-64")}
    measured = measure_profiles(config, run_variants(run), loads=2, runs=5)
    assert sorted(p.variant for p in measured) == ["digits-mlp-16", "digits-mlp-64"]
    assert all(p.load_ms > 0 and p.first_infer_ms > 0 and p.infer_p50_ms > 0 for p in measured)
