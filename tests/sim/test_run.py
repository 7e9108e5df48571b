"""The simulator end to end: a run computed by hand, determinism, what policies must do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faillite.launch.config import ClusterConfig, load_cluster_config
from faillite.profiler.format import VariantProfile
from faillite.sim.clients import AnswerExtra
from faillite.sim.failures import FailureEvent, parse_failures
from faillite.sim.run import EXACT_MAX_APPS, choose_method, simulate
from faillite.sim.timing import SimTiming

DEMO = Path(__file__).resolve().parents[2] / "faillite" / "demo" / "cluster.yaml"
MIB = 1 << 20


def _profile(
    family: str, variant: str, *, accuracy: float, mib: int, load_ms: float, first_ms: float
) -> VariantProfile:
    return VariantProfile(
        family=family,
        variant=variant,
        accuracy=accuracy,
        accuracy_source="measured",
        file_bytes=mib * MIB,
        load_ms=load_ms,
        memory_bytes=mib * MIB,
        first_infer_ms=first_ms,
        infer_p50_ms=2.0,
        infer_p99_ms=3.0,
    )


def _small() -> tuple[ClusterConfig, list[VariantProfile]]:
    """3 nodes, 2 apps of a one-variant family (no stepping stone can exist)."""
    profiles = [_profile("cam", "cam-v1", accuracy=0.8, mib=10, load_ms=150.0, first_ms=12.0)]
    config = ClusterConfig.model_validate(
        {
            "nodes": [{"id": f"n{i}", "memory": "25MiB"} for i in (1, 2, 3)],
            "apps": [
                {"name": "a", "family": "cam", "slo_ms": 50, "node": "n1"},
                {"name": "b", "family": "cam", "slo_ms": 50, "node": "n2"},
            ],
            "controller": {"policy": "full-cold", "method": "greedy"},
        }
    )
    return config, profiles


def test_one_crash_computed_by_hand() -> None:
    """full-cold, n1 crashes: app ``a`` has a cold backup of its only variant on a survivor.
    MTTR = connection close + recovery plan + the load + the program's switch + the route push
    + one request (overhead + the first inference after a load)."""
    config, profiles = _small()
    t = SimTiming(answer_extra_ms=())  # no answer tail: every answer takes the agent's time
    result = simulate(config, [FailureEvent(0.0, ("n1",))], policy="full-cold", profiles=profiles, timing=t)
    doc = result.to_json()
    (app,) = doc["injections"][0]["apps"]
    assert app["app"] == "a" and app["recovered"] and app["mode"] == "cold"
    load_ms, first_ms = 150.0, 12.0
    expected = (
        t.crash_close_s
        + t.recovery_plan_s
        + load_ms / 1000
        + t.publish_s
        + t.route_push_s
        + t.request_overhead_s
    ) * 1000 + first_ms
    assert app["mttr_ms"] == pytest.approx(expected, abs=0.002)
    phases = app["phases_ms"]
    assert phases["detect"] == pytest.approx(t.crash_close_s * 1000, abs=0.002)
    assert phases["decide"] == pytest.approx(t.recovery_plan_s * 1000, abs=0.002)
    assert phases["load"] == pytest.approx(load_ms, abs=0.002)
    assert phases["publish"] == pytest.approx(t.publish_s * 1000, abs=0.002)
    assert phases["answer"] == pytest.approx(
        (t.route_push_s + t.request_overhead_s) * 1000 + first_ms, abs=0.002
    )
    assert app["first_variant"] == "cam-v1" and app["accuracy_drop_settled"] == 0.0
    assert doc["recovered_share"] == 1.0 and doc["failed_apps"] == 1
    outcome = doc["app_outcomes"]["a"]
    assert outcome["recovered"] and outcome["variant"] == "cam-v1" and outcome["node"] in ("n2", "n3")
    assert doc["method"]["ran"] == "greedy"


def test_hang_is_judged_by_the_detector() -> None:
    """A hung node keeps its connection: the adaptive detector declares it dead, after its
    quiet timeout less the time since the last beat (so between the two)."""
    config, profiles = _small()
    result = simulate(
        config, [FailureEvent(0.0, ("n1",), kind="hang")], policy="full-cold", profiles=profiles
    ).to_json()
    dead = [e for e in result["events"] if e["kind"] == "node_dead"]
    assert len(dead) == 1 and dead[0]["reason"].startswith("no heartbeat")
    silent = dead[0]["detection_ms"]
    assert 118.0 <= silent <= 118.0 + 10.0  # the quiet timeout (60 ms beats), plus jitter and slack
    (app,) = result["injections"][0]["apps"]
    assert app["recovered"] and app["detected_by"] in ("node_dead", "failure_suspected", "client_error")


def _strip(doc: dict) -> str:
    """The document less the wall-clock figures."""
    return json.dumps(
        {k: v for k, v in doc.items() if k not in ("sim_seconds", "sim_us_per_event", "planner_seconds")},
        sort_keys=True,
    )


def test_same_seed_same_output() -> None:
    demo = load_cluster_config(DEMO)  # with traffic: the seed draws the open-loop arrivals
    config = demo.model_copy(update={"apps": tuple(a.model_copy(update={"rate": 8.0}) for a in demo.apps)})
    spec = "random:3,ttr=exp:20,kind=crash"
    failures = parse_failures(spec, [(n.id, n.domain) for n in config.nodes], seed=3, horizon_s=60)
    runs = [
        simulate(config, failures, policy="faillite-shared", seed=3, method="greedy").to_json()
        for _ in range(2)
    ]
    assert runs[0]["touched_requests"] > 0
    assert _strip(runs[0]) == _strip(runs[1])
    other = simulate(config, failures, policy="faillite-shared", seed=4, method="greedy").to_json()
    assert _strip(other) != _strip(runs[0])


def test_full_warm_answers_from_the_warm_backup_at_once_full_cold_loads_the_full_model() -> None:
    config = load_cluster_config(DEMO)
    failures = [FailureEvent(0.0, ("edge-1",))]
    t = SimTiming()
    warm = simulate(config, failures, policy="full-warm", method="greedy", timing=t).to_json()
    warm_apps = [a for i in warm["injections"] for a in i["apps"] if a["mode"] == "warm"]
    assert warm_apps
    for a in warm_apps:  # no load: the route switch (or a hedge) is the recovery
        assert a["recovered"] and a["phases_ms"]["load"] == 0.0
        assert a["accuracy_drop_first"] == 0.0  # the same variant
        assert a["mttr_ms"] <= (t.crash_close_s + t.decide_s + t.route_push_s) * 1000 + 25.0
    cold = simulate(config, failures, policy="full-cold", method="greedy", timing=t).to_json()
    cold_apps = [a for i in cold["injections"] for a in i["apps"]]
    for a in cold_apps:  # settles on the primary's own variant, loaded after the failure
        assert a["recovered"] and a["accuracy_drop_settled"] == 0.0
        assert any(s["variant"] == a["settled_variant"] for s in a["steps"])
    assert all(a["phases_ms"]["load"] > 0 for a in cold_apps if a["mode"] == "cold")
    assert cold["mttr_mean_ms"] > warm["mttr_mean_ms"]
    assert warm["cold_reserved_bytes"] == 0 and cold["backup_memory_bytes"] == 0


def test_focused_reconcile_passes_give_the_same_run() -> None:
    config = load_cluster_config(DEMO)
    failures = parse_failures(
        "node:edge-1,repair=5+node:edge-3,at=2,repair=4", [(n.id, n.domain) for n in config.nodes], seed=0
    )
    for policy in ("faillite-shared", "full-cold"):
        a = simulate(config, failures, policy=policy, method="greedy").to_json()
        b = simulate(config, failures, policy=policy, method="greedy", full_reconcile=True).to_json()
        assert _strip(a) == _strip(b)
        assert any(e["kind"] == "node_rejoined" for e in a["events"])


def test_a_hang_is_hedged_to_the_warm_backup_before_the_detector_speaks() -> None:
    """Clients hedge to the route's warm fallback after their adaptive delay (a few latencies):
    warm-backed apps of a hung node answer long before its node_dead."""
    config = load_cluster_config(DEMO)
    doc = simulate(
        config, [FailureEvent(0.0, ("edge-1",), kind="hang")], policy="full-warm", method="greedy"
    ).to_json()
    dead = next(e for e in doc["events"] if e["kind"] == "node_dead")
    failed_at = doc["injections"][0]["failed_at_s"]
    warm = [a for a in doc["injections"][0]["apps"] if a["mode"] == "warm"]
    assert warm
    for a in warm:
        assert a["recovered"] and a["detected_by"] in ("client_rerouted", "failure_suspected")
        assert a["mttr_ms"] < (dead["mono"] - failed_at) * 1000


def test_greedy_replaces_exact_beyond_the_size_exact_can_finish() -> None:
    config, _ = _small()
    exact = config.model_copy(update={"controller": config.controller.model_copy(update={"method": "exact"})})
    assert choose_method(exact, None)["ran"] == "exact"
    many = exact.model_copy(update={"apps": exact.apps * (EXACT_MAX_APPS // 2 + 1)})
    chosen = choose_method(many, None)
    assert chosen["ran"] == "greedy" and chosen["asked"] == "exact" and "CP-SAT" in chosen["reason"]
    assert choose_method(many, "greedy")["ran"] == "greedy"


def test_timing_profiles_time_the_agents_and_leave_the_plan_alone() -> None:
    """Measured times (``timing_profiles``) replace the profile's load and first inference in the
    simulated agents only: the recovery takes them, the planner plans as before."""
    config, profiles = _small()
    t = SimTiming(answer_extra_ms=())
    measured = [_profile("cam", "cam-v1", accuracy=0.8, mib=10, load_ms=40.0, first_ms=3.0)]
    failure = [FailureEvent(0.0, ("n1",))]
    base = simulate(config, failure, policy="full-cold", profiles=profiles, timing=t).to_json()
    timed = simulate(
        config, failure, policy="full-cold", profiles=profiles, timing=t, timing_profiles=measured
    ).to_json()
    (app,) = timed["injections"][0]["apps"]
    assert app["phases_ms"]["load"] == pytest.approx(40.0, abs=0.002)
    assert app["phases_ms"]["answer"] == pytest.approx(
        (t.route_push_s + t.request_overhead_s) * 1000 + 3.0, abs=0.002
    )
    assert base["injections"][0]["apps"][0]["phases_ms"]["load"] == pytest.approx(150.0, abs=0.002)
    assert timed["plan"] == base["plan"] and timed["shared"] == base["shared"]


def test_the_result_holds_the_whole_final_plan() -> None:
    """Every app's placement, as GET /v1/plan names it, not only the failed apps'."""
    config = load_cluster_config(DEMO)
    doc = simulate(
        config, [FailureEvent(0.0, ("edge-2",))], policy="faillite-shared", method="greedy"
    ).to_json()
    assert [p["app"] for p in doc["plan"]] == sorted(a.name for a in config.apps)
    assert all({"primary_node", "primary_variant", "backup"} <= set(p) for p in doc["plan"])
    assert all(p["primary_node"] != "edge-2" for p in doc["plan"])  # replanned off the dead node
    for sf in doc["shared"]:
        assert {"node", "family", "variant", "apps"} <= set(sf)
    failed = doc["app_outcomes"]
    by_app = {p.pop("app"): p for p in doc["plan"]}
    assert all(by_app[a] == o["placement"] for a, o in failed.items())


def test_a_warm_backups_first_answer_is_a_first_run() -> None:
    """At deploy only the primaries have answered: a warm backup's first request pays the first
    inference (as on a real cluster), not the steady p50."""
    config, profiles = _small()
    config = config.model_copy(
        update={"controller": config.controller.model_copy(update={"policy": "full-warm"})}
    )
    t = SimTiming(answer_extra_ms=())
    doc = simulate(
        config, [FailureEvent(0.0, ("n1",))], policy="full-warm", profiles=profiles, timing=t
    ).to_json()
    (app,) = doc["injections"][0]["apps"]
    assert app["recovered"] and app["mode"] == "warm" and app["phases_ms"]["load"] == 0.0
    first_ms = 12.0  # _small's first inference; its p50 is 2 ms
    assert app["mttr_ms"] >= first_ms + t.request_overhead_s * 1000


def test_answer_extra_follows_its_quantiles_and_its_seed() -> None:
    points = ((0.0, 0.0), (0.5, 0.0), (0.99, 3.3), (1.0, 3.3))
    extra = AnswerExtra(points, seed=1)
    draws = sorted(extra.draw() * 1000 for _ in range(20000))
    assert draws[0] >= 0.0 and draws[-1] <= 3.3
    assert draws[len(draws) // 2] == pytest.approx(0.0, abs=0.05)
    assert draws[int(len(draws) * 0.99)] == pytest.approx(3.3, abs=0.1)
    assert draws[int(len(draws) * 0.9)] == pytest.approx(3.3 * 0.4 / 0.49, abs=0.1)
    a, b, c = AnswerExtra(points, seed=1), AnswerExtra(points, seed=1), AnswerExtra(points, seed=2)
    first = [a.draw() for _ in range(50)]
    assert first == [b.draw() for _ in range(50)] and first != [c.draw() for _ in range(50)]
    assert extra.mean * 1000 == pytest.approx(0.49 * 3.3 / 2 + 0.01 * 3.3)
    assert AnswerExtra((), seed=1).draw() == 0.0 and AnswerExtra((), seed=1).mean == 0.0
    with pytest.raises(ValueError, match="from 0 to 1"):
        AnswerExtra(((0.5, 1.0), (1.0, 2.0)), seed=1)
