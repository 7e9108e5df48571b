"""Failure specs and traces (faillite.sim.failures)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from faillite.sim.failures import FailureEvent, FailureSpecError, parse_failures

NODES = [(f"n{k}", f"rack-{k // 4}") for k in range(12)]


def parse(spec: str, *, seed: int = 0, horizon_s: float = 600.0, nodes=NODES) -> tuple[FailureEvent, ...]:
    return parse_failures(spec, nodes, seed=seed, horizon_s=horizon_s)


def test_node_and_domain() -> None:
    (e,) = parse("node:n3")
    assert e == FailureEvent(0.0, ("n3",), "crash", None)
    (d,) = parse("domain:rack-1,at=5,repair=60,kind=hang")
    assert d == FailureEvent(5.0, ("n4", "n5", "n6", "n7"), "hang", 60.0)


def test_joined_specs_are_merged_in_time_order() -> None:
    events = parse("node:n1,at=30+node:n2,at=10+domain:rack-2,at=20")
    assert [e.at_s for e in events] == [10.0, 20.0, 30.0]
    assert [e.nodes for e in events] == [("n2",), ("n8", "n9", "n10", "n11"), ("n1",)]


def test_repeat_repairs_before_the_next_failure() -> None:
    events = parse("repeat:n0,3,120")
    assert [e.at_s for e in events] == [0.0, 120.0, 240.0]
    assert all(e.nodes == ("n0",) and e.repair_after_s == 60.0 for e in events)
    assert [e.at_s for e in parse("repeat:n0,2,10,at=5,repair=2")] == [5.0, 15.0]


def test_random_without_repair_fails_distinct_nodes() -> None:
    events = parse("random:5", seed=3)
    assert len(events) == 5
    assert len({e.nodes for e in events}) == 5
    assert all(e.repair_after_s is None for e in events)
    assert [e.at_s for e in events] == sorted(e.at_s for e in events)


def test_random_is_deterministic_by_seed() -> None:
    spec = "random:20,ttf=weibull:1.5:100,ttr=exp:30"
    assert parse(spec, seed=7) == parse(spec, seed=7)
    assert parse(spec, seed=7) != parse(spec, seed=8)


def test_a_repaired_node_fails_again_only_after_its_repair() -> None:
    events = parse("random:200,ttf=exp:50,ttr=exp:20", seed=1, nodes=NODES[:3])
    last: dict[str, float] = {}
    for e in events:
        (n,) = e.nodes
        assert e.repair_after_s is not None
        assert e.at_s >= last.get(n, 0.0)
        last[n] = e.at_s + e.repair_after_s


MANY = [(f"m{k}", None) for k in range(4000)]


def test_exponential_means() -> None:
    # every node fails once (no repair): the failure times are the nodes' first times to failure
    events = parse("random:4000,ttf=exp:200", seed=11, nodes=MANY)
    assert statistics.fmean(e.at_s for e in events) == pytest.approx(200, rel=0.05)
    repaired = parse("random:4000,ttf=exp:200,ttr=exp:30", seed=11, nodes=MANY)
    assert statistics.fmean(e.repair_after_s or 0 for e in repaired) == pytest.approx(30, rel=0.05)


def test_weibull_mean() -> None:
    shape, scale = 2.0, 100.0
    events = parse(f"random:4000,ttf=weibull:{shape}:{scale}", seed=5, nodes=MANY)
    mean = scale * math.gamma(1 + 1 / shape)
    assert statistics.fmean(e.at_s for e in events) == pytest.approx(mean, rel=0.05)
    # shape 2 has a smaller spread than the exponential with the same mean
    assert statistics.stdev(e.at_s for e in events) < 0.7 * mean


def test_default_time_to_failure_spreads_over_the_horizon() -> None:
    events = parse("random:100", seed=2, horizon_s=1000, nodes=MANY)
    # the 100 earliest of 4000 exponential draws with mean 1000 x 4000 / 100
    assert 500 < events[-1].at_s < 2000


def test_trace_files(tmp_path: Path) -> None:
    trace = [
        {"at_s": 10, "node": "n1", "repair_after_s": 30},
        {"at_s": 5, "domain": "rack-0", "kind": "hang"},
        {"at_s": 7, "nodes": ["n9", "n10"]},
    ]
    yml = tmp_path / "t.yaml"
    yml.write_text("failures:\n" + "".join(f"  - {json.dumps(t)}\n" for t in trace))
    js = tmp_path / "t.json"
    js.write_text(json.dumps(trace))
    for path in (yml, js):
        events = parse(str(path))
        assert events == (
            FailureEvent(5.0, ("n0", "n1", "n2", "n3"), "hang", None),
            FailureEvent(7.0, ("n9", "n10"), "crash", None),
            FailureEvent(10.0, ("n1",), "crash", 30.0),
        )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("node:nope", "unknown node 'nope'"),
        ("domain:rack-9", "unknown domain 'rack-9'"),
        ("random:x", "COUNT: expected a whole number"),
        ("random:0", "COUNT: must be at least 1"),
        ("random:13", "never repaired"),
        ("random:3,ttf=exp:-1", "MEAN_S: must be positive"),
        ("random:3,ttf=gauss:1", "expected exp:MEAN_S or weibull:SHAPE:SCALE_S"),
        ("random:3,ttr=weibull:2", "expected exp:MEAN_S or weibull:SHAPE:SCALE_S"),
        ("node:n1,at=soon", "at: expected a number"),
        ("node:n1,kind=melt", "kind must be crash or hang"),
        ("node:n1,color=red", "unknown option 'color'"),
        ("repeat:n1,3", "expected repeat:ID,COUNT,EVERY_S"),
        ("repeat:n1,3,10,repair=10", "must be shorter than EVERY_S"),
        ("explode:n1", "expected node:ID"),
        ("node:n1+", "empty part"),
        ("missing.yaml", "missing.yaml: trace file not found"),
    ],
)
def test_errors_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(FailureSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(spec)


def test_trace_file_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- {at_s: 1, node: n1}\n- {at_s: late, node: n2}\n")
    with pytest.raises(FailureSpecError, match=r"bad.yaml: \[1\].at_s: expected a number"):
        parse(str(path))
    path.write_text("- {at_s: 1, node: zz}\n")
    with pytest.raises(FailureSpecError, match=r"\[0\].node: unknown node 'zz'"):
        parse(str(path))
    path.write_text("- {at_s: 1}\n")
    with pytest.raises(FailureSpecError, match=r"\[0\]: give exactly one of nodes, node, domain"):
        parse(str(path))
    path.write_text("{a: [\n")
    with pytest.raises(FailureSpecError, match="not valid YAML"):
        parse(str(path))
