"""The MTTR phase breakdown (faillite.bench.phases) on recorded event and request sequences.

The sequences follow what the controller emits during a failover (links.declare_dead ->
failover.fail_over -> _run_chain -> core.load/switch, climb), with the fields it emits, and
what a probe stream records (faillite.bench.load.RequestRecord)."""

from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faillite.bench.load import RequestRecord
from faillite.bench.phase_summary import by_mode, phase_means, summarize
from faillite.bench.phases import PHASES, Failure, app_phases, failure_phases

T0 = 1000.0  # the failure, in time.monotonic() seconds


class Log:
    """Builds an event log as GET /v1/events returns it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def emit(self, kind: str, at_ms: float, **data: Any) -> None:
        mono = T0 + at_ms / 1000
        self.events.append({"id": next(self._ids), "ts": 1.7e9 + mono, "kind": kind, **data, "mono": mono})


def rec(app: str, start_ms: float, end_ms: float, node: str | None = None, variant: str | None = None,
        accuracy: float | None = None) -> RequestRecord:  # fmt: skip
    ok = node is not None
    return RequestRecord(
        app, T0 + start_ms / 1000, T0 + end_ms / 1000, ok, node, variant, accuracy,
        None if ok else "no live target",
    )  # fmt: skip


def test_warm_switch_detected_by_the_controller() -> None:
    log = Log()
    log.emit("node_dead", 150.0, node="A", epoch=1, reason="silent", detection_ms=150.0)
    log.emit("route_changed", 150.2, app="cam", node="B", variant="small", state="failed_over",
             reason="warm backup", previous="A")  # fmt: skip
    log.emit("app_recovered", 150.21, app="cam", failed_node="A", node="B", variant="small",
             recovery_ms=150.2, state="failed_over")  # fmt: skip
    # Re-protection: a new warm backup, loaded after the switch, under the app's name.
    log.emit("load_started", 151.5, app="cam", node="C", variant="small", reason="warm backup")
    log.emit("load_finished", 190.0, app="cam", node="C", variant="small", ms=38.5)
    log.emit("app_settled", 900.0, app="cam", node="B", variant="small", protected=True)
    records = [
        rec("cam", -5.0, -1.0, "A", "big", 0.95),
        rec("cam", -0.5, 151.0, "B", "small", 0.90),  # in flight at the failure, answered by B
        rec("cam", 151.1, 152.0, "B", "small", 0.90),
    ]
    p = app_phases("cam", Failure("A", "SIGSTOP", T0), log.events, records)
    assert p.mode == "warm" and p.recovered and not p.client_first
    assert p.detected_by == "node_dead"
    assert (p.first_node, p.first_variant) == ("B", "small")
    assert (p.settled_node, p.settled_variant) == ("B", "small")
    assert p.detect_ms == pytest.approx(150.0)
    assert p.decide_ms == pytest.approx(0.2)
    assert p.load_ms == 0.0
    assert p.publish_ms == pytest.approx(0.0)
    assert p.answer_ms == pytest.approx(0.8)
    assert p.settle_ms == pytest.approx(0.0)
    assert p.recovery_ms == pytest.approx(151.0)
    assert p.marks.client_detected == pytest.approx(T0 + 0.151)
    assert [(s.node, s.variant, s.load_started) for s in p.steps] == [
        ("B", "small", None),
        ("C", "small", pytest.approx(T0 + 0.1515)),
    ]


def _cold_progressive() -> tuple[Log, list[RequestRecord]]:
    log = Log()
    log.emit("failure_suspected", 3.0, node="A", reason="connection refused")
    log.emit("node_dead", 4.0, node="A", epoch=1, reason="client suspicion", detection_ms=4.0)
    log.emit("load_started", 10.0, app="det", node="C", variant="det-s", reason="stepping stone")
    log.emit("load_finished", 60.0, app="det", node="C", variant="det-s", ms=50.0)
    log.emit("route_changed", 60.5, app="det", node="C", variant="det-s", state="stepping",
             reason="stepping stone", previous=None)  # fmt: skip
    log.emit("app_recovered", 60.51, app="det", failed_node="A", node="C", variant="det-s",
             recovery_ms=60.5, state="stepping")  # fmt: skip
    log.emit("progressive_step", 60.52, app="det", step=1, node="C", variant="det-s", stone=True)
    log.emit("load_started", 60.6, app="det", node="C", variant="det-m", reason="planned backup")
    log.emit("plan_changed", 80.0, reason="failure of A", lost=[], moved=["det"], protected=True)
    log.emit("load_finished", 300.0, app="det", node="C", variant="det-m", ms=239.4)
    log.emit("route_changed", 300.1, app="det", node="C", variant="det-m", state="failed_over",
             reason="planned backup", previous="C")  # fmt: skip
    log.emit("progressive_step", 300.11, app="det", step=2, node="C", variant="det-m", stone=False)
    log.emit("unloaded", 400.0, node="C", variant="det-s", reason="stepping stone done")
    log.emit("plan_changed", 3000.0, reason="climb back: det from det-m to det-l", app="det", node="C")
    log.emit("load_started", 3010.0, app="det", node="C", variant="det-l", reason="climb")
    log.emit("load_finished", 3500.0, app="det", node="C", variant="det-l", ms=490.0)
    log.emit("route_changed", 3500.2, app="det", node="C", variant="det-l", state="failed_over",
             reason="plan primary", previous="C")  # fmt: skip
    log.emit("app_settled", 3600.0, app="det", node="C", variant="det-l", protected=True)
    records = [
        rec("det", -1.0, 2.0),  # connection refused, no live target
        rec("det", 2.1, 30.0),
        rec("det", 30.1, 61.0),
        rec("det", 61.0, 65.0, "C", "det-s", 0.80),
        rec("det", 65.1, 299.0, "C", "det-s", 0.80),
        rec("det", 299.1, 305.0, "C", "det-m", 0.90),
        rec("det", 305.1, 3501.0, "C", "det-m", 0.90),
        rec("det", 3501.0, 3505.0, "C", "det-l", 0.95),
        rec("det", 3505.1, 3510.0, "C", "det-l", 0.95),
    ]
    return log, records


def test_cold_progressive_with_two_steps_and_a_climb() -> None:
    log, records = _cold_progressive()
    p = app_phases("det", Failure("A", "SIGKILL", T0), log.events, records)
    assert p.mode == "cold" and p.recovered and not p.client_first
    assert p.detected_by == "client_error"  # the refused request ended before the suspicion
    assert p.detect_ms == pytest.approx(2.0)
    assert p.decide_ms == pytest.approx(8.0)  # to the stepping stone's load_started
    assert p.load_ms == pytest.approx(50.0)
    assert p.publish_ms == pytest.approx(0.5)
    assert p.answer_ms == pytest.approx(4.5)
    assert p.recovery_ms == pytest.approx(65.0)
    assert p.settle_ms == pytest.approx(3440.0)  # first answer -> first det-l answer
    assert p.settled_ms == pytest.approx(3505.0)
    assert (p.first_variant, p.settled_variant) == ("det-s", "det-l")
    assert [(s.variant, s.load_started, s.load_finished, s.routed, s.answered) for s in p.steps] == [
        ("det-s", T0 + 0.010, T0 + 0.060, T0 + 0.0605, T0 + 0.065),
        ("det-m", T0 + 0.0606, T0 + 0.300, T0 + 0.3001, T0 + 0.305),
        ("det-l", T0 + 3.010, T0 + 3.500, T0 + 3.5002, T0 + 3.505),
    ]
    assert sum(v for k, v in p.phases().items() if k != "settle") == pytest.approx(p.recovery_ms)
    timeline = p.timeline()
    assert timeline["marks"] == pytest.approx(
        {"detected": 2.0, "client_detected": 2.0, "suspected": 3.0, "declared_dead": 4.0, "decided": 10.0,
         "loaded": 60.0, "published": 60.5, "first_answer": 65.0, "settled_event": 3600.0, "settled": 3505.0}
    )  # fmt: skip
    step = timeline["steps"][1]
    assert (step["node"], step["variant"], step["load_failed"]) == ("C", "det-m", False)
    assert [
        step[k] for k in ("load_started_ms", "load_finished_ms", "routed_ms", "answered_ms")
    ] == pytest.approx([60.6, 300.0, 300.1, 305.0])


def test_client_hedged_to_the_warm_backup_before_the_controller_decided() -> None:
    """A hang: the client's hedge reaches the warm fallback of its route table 12 ms in; the
    controller's verdict and switch come later. Those marks are off the answer's path: phases
    are 0, never negative, and the time is the client's detection."""
    log = Log()
    log.emit("failure_suspected", 13.0, node="A", reason="hedge lost")
    log.emit("node_dead", 400.0, node="A", epoch=1, reason="silent", detection_ms=400.0)
    log.emit("route_changed", 400.1, app="cam", node="B", variant="small", state="failed_over",
             reason="warm backup", previous="A")  # fmt: skip
    records = [rec("cam", -2.0, 12.0, "B", "small", 0.9), rec("cam", 12.1, 14.0, "B", "small", 0.9)]
    p = app_phases("cam", Failure("A", "SIGSTOP", T0), log.events, records, final_variant="small")
    assert p.client_first and p.detected_by == "client_rerouted"
    assert p.phases() == pytest.approx(
        {"detect": 12.0, "decide": 0.0, "load": 0.0, "publish": 0.0, "answer": 0.0, "settle": 0.0}
    )
    assert p.marks.decided == pytest.approx(T0 + 0.4001)  # still reported, as a mark
    assert p.marks.suspected == pytest.approx(T0 + 0.013)


def test_a_request_answered_elsewhere_detects_at_its_end() -> None:
    """It may have gone to the failed node first and been retried: only its end is a bound."""
    log = Log()
    log.emit("node_dead", 50.0, node="A", epoch=1, reason="silent", detection_ms=50.0)
    records = [rec("cam", -3.0, -1.0, "A", "big", 0.95), rec("cam", 5.0, 9.0, "B", "small", 0.9)]
    p = app_phases("cam", Failure("A", "SIGKILL", T0), log.events, records)
    assert p.detected_by == "client_rerouted" and p.client_first
    assert p.detect_ms == pytest.approx(9.0) and p.answer_ms == pytest.approx(0.0)


def test_unrecovered_app() -> None:
    log = Log()
    log.emit("node_dead", 100.0, node="A", epoch=1, reason="silent", detection_ms=100.0)
    log.emit("app_lost", 101.5, app="seg", reason="no node can hold any variant")
    records = [rec("seg", -1.0, 2000.0), rec("seg", 2000.1, 4000.0)]  # the client's deadline
    p = app_phases("seg", Failure("A", "SIGKILL", T0), log.events, records, until=T0 + 5.0)
    assert not p.recovered and p.mode == "none"
    assert p.detected_by == "node_dead"
    assert p.detect_ms == pytest.approx(100.0) and p.decide_ms == pytest.approx(1.5)
    assert (p.load_ms, p.publish_ms, p.answer_ms, p.settle_ms) == (None, None, None, None)
    assert p.recovery_ms is None and p.settled_ms is None


def test_missing_events_leave_their_phase_none_and_the_sum_whole() -> None:
    records = [rec("cam", -1.0, 3.0), rec("cam", 3.1, 70.0, "C", "c-s", 0.8)]
    failure = Failure("A", "SIGKILL", T0)
    # No controller events at all (e.g. the log was not read): only the client's view.
    p = app_phases("cam", failure, [], records)
    assert p.detected_by == "client_error"
    assert p.phases() == {"detect": pytest.approx(3.0), "decide": None, "load": 0.0, "publish": None,
                          "answer": pytest.approx(67.0), "settle": None}  # fmt: skip
    # A load started and its end is not in the log; events without ``mono`` are ignored.
    log = Log()
    log.emit("load_started", 10.0, app="cam", node="C", variant="c-s", reason="stepping stone")
    log.events.append(
        {"id": 99, "ts": 0.0, "kind": "load_finished", "app": "cam", "node": "C", "variant": "c-s"}
    )
    log.emit("route_changed", 65.0, app="cam", node="C", variant="c-s", state="stepping", reason="stone")
    q = app_phases("cam", failure, log.events, records)
    assert q.phases() == {"detect": pytest.approx(3.0), "decide": pytest.approx(7.0), "load": None,
                          "publish": pytest.approx(55.0), "answer": pytest.approx(5.0),
                          "settle": None}  # fmt: skip
    assert q.settled_variant is None


def test_bad_input_is_a_clear_error() -> None:
    failure = Failure("A", "SIGKILL", T0)
    with pytest.raises(ValueError, match="event #1 is not an object"):
        app_phases("x", failure, [{"kind": "node_dead", "mono": T0}, "node_dead"], [])
    with pytest.raises(ValueError, match="before the failure"):
        app_phases("x", failure, [], [], until=T0 - 1.0)


def test_a_load_finished_before_the_decision_is_clamped() -> None:
    """The replica was already loading (a climb in progress) when the node died: its load
    ended before the controller's decision, so the load phase is 0, not negative."""
    log = Log()
    log.emit("load_finished", 1.0, app="cam", node="C", variant="c-m", ms=400.0)
    log.emit("node_dead", 2.0, node="A", epoch=1, reason="silent", detection_ms=2.0)
    log.emit("route_changed", 2.5, app="cam", node="C", variant="c-m", state="failed_over", reason="x")
    p = app_phases("cam", Failure("A", "SIGKILL", T0), log.events, [rec("cam", 2.6, 8.0, "C", "c-m", 0.9)])
    assert p.phases() == pytest.approx(
        {"detect": 2.0, "decide": 0.5, "load": 0.0, "publish": 0.0, "answer": 5.5, "settle": None}
    )


def test_window_and_answers_from_the_failed_node() -> None:
    """An answer from the failed node left it before it died; events after the window are out."""
    log = Log()
    log.emit("node_dead", 30.0, node="A", epoch=1, reason="silent", detection_ms=30.0)
    log.emit("app_settled", 9000.0, app="cam", node="B", variant="small", protected=True)
    records = [rec("cam", -1.0, 0.5, "A", "big", 0.95), rec("cam", 0.6, 40.0, "B", "small", 0.9)]
    p = app_phases("cam", Failure("A", "SIGKILL", T0), log.events, records, until=T0 + 5.0)
    assert p.detected_by == "node_dead" and p.detect_ms == pytest.approx(30.0)
    assert p.answer_ms == pytest.approx(10.0) and p.marks.client_detected == pytest.approx(T0 + 0.040)
    assert p.settled_variant is None and p.marks.settled_event is None  # after the window


def test_summary_over_apps() -> None:
    log, records = _cold_progressive()
    log.emit("route_changed", 150.2, app="cam", node="B", variant="small", state="failed_over",
             reason="warm backup", previous="A")  # fmt: skip
    records += [rec("cam", -0.5, 151.0, "B", "small", 0.90)]
    records += [rec("seg", -1.0, 4000.0)]
    results = failure_phases(
        ["det", "cam", "seg"], Failure("A", "SIGKILL", T0), log.events, records,
        until=T0 + 5.0, modes={"cam": "warm", "seg": "cold"},
    )  # fmt: skip
    assert [r.mode for r in results] == ["cold", "warm", "cold"]
    summary = summarize(results)
    assert (summary["apps"], summary["recovered"]) == (3, 2)
    assert summary["detected_by"] == {"client_error": 1, "failure_suspected": 2}
    # cam: suspected at 3 ms, decided (its switch) at 150.2 ms, answered at 151 ms.
    assert summary["phases"]["detect"] == {"mean": pytest.approx(2.5), "p99": pytest.approx(3.0), "n": 2}
    assert summary["phases"]["decide"]["mean"] == pytest.approx((8.0 + 147.2) / 2)
    assert summary["phases"]["settle"]["n"] == 1
    means = phase_means(results)
    assert list(means) == list(PHASES)
    recovery = summary["recovery_mean_ms"]
    assert sum(v for k, v in means.items() if k != "settle" and v is not None) == pytest.approx(recovery)
    modes = by_mode(results)
    assert list(modes) == ["cold", "warm"]
    assert (modes["cold"]["apps"], modes["cold"]["recovered"], modes["warm"]["recovered"]) == (2, 1, 1)
    assert modes["warm"]["recovery_mean_ms"] == pytest.approx(151.0)
    empty = summarize([])
    assert empty["recovered"] == 0 and empty["phases"]["detect"]["mean"] is None


# property: whatever the order of the marks, phases are >= 0 and add up

_KINDS = ("failure_suspected", "node_dead", "load_started", "load_finished", "load_failed",
          "route_changed", "app_lost", "plan_changed", "progressive_step", "app_settled")  # fmt: skip
_event = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(_KINDS),
        "mono": st.floats(T0 - 1.0, T0 + 10.0),
        "app": st.sampled_from(["x", "y"]),
        "node": st.sampled_from(["A", "B", "C"]),
        "variant": st.sampled_from(["v1", "v2", "v3"]),
    }
)


@st.composite
def _record(draw: st.DrawFn) -> RequestRecord:
    start = draw(st.floats(T0 - 1.0, T0 + 10.0))
    end = start + draw(st.floats(0.0, 3.0))
    ok = draw(st.booleans())
    node = draw(st.sampled_from(["A", "B", "C"])) if ok else None
    variant = draw(st.sampled_from(["v1", "v2", "v3"])) if ok else None
    return RequestRecord(
        draw(st.sampled_from(["x", "y"])), start, end, ok, node, variant, 0.9 if ok else None
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(_event, max_size=25), st.lists(_record(), max_size=25), st.sampled_from(["v1", "v2", None]))
def test_phases_are_never_negative_and_add_up(
    events: list[dict[str, Any]], records: list[RequestRecord], final: str | None
) -> None:
    p = app_phases("x", Failure("A", "SIGKILL", T0), events, records, final_variant=final)
    values = p.phases()
    assert all(v is None or v >= 0 for v in values.values())
    if p.recovered:
        assert all(values[k] is not None for k in ("detect", "answer"))
        to_answer = sum(v for k, v in values.items() if k != "settle" and v is not None)
        assert to_answer == pytest.approx(p.recovery_ms, abs=1e-6)
        if p.settled_ms is not None:
            assert to_answer + (values["settle"] or 0.0) == pytest.approx(p.settled_ms, abs=1e-6)
    else:
        assert values["answer"] is None and values["settle"] is None


# a real failover, recorded by ``python -m tests.bench.record_failover``

RECORDED = Path(__file__).parent / "data" / "failover_sigkill.json"


def test_recorded_sigkill_of_a_real_cluster() -> None:
    doc = json.loads(RECORDED.read_text())
    failure = Failure(**doc["failure"])
    events, records = doc["events"], [RequestRecord(**r) for r in doc["records"]]
    results = failure_phases(doc["apps"], failure, events, records)  # app_settled comes ~1 s later
    by_app = {r.app: r for r in results}
    dead = next(e["mono"] for e in events if e["kind"] == "node_dead" and e["node"] == failure.node)
    for name, app in doc["apps"].items():
        p = by_app[name]
        assert p.mode == app["mode"]  # inferred from the events, as the plan had it
        first = min(
            r.end
            for r in records
            if r.app == name and r.ok and r.node != failure.node and r.end >= failure.at
        )
        assert p.recovery_ms == pytest.approx((first - failure.at) * 1000)
        values = p.phases()
        assert all(v is not None and v >= 0 for v in values.values())
        assert sum(v for k, v in values.items() if k != "settle") == pytest.approx(p.recovery_ms)
        assert p.marks.detected is not None and p.marks.detected <= dead
        settled = [e for e in events if e["kind"] == "app_settled" and e["app"] == name]
        assert p.settled_variant == settled[-1]["variant"]
        if app["mode"] == "warm":
            assert p.load_ms == 0.0
    cold = next(by_app[n] for n, a in doc["apps"].items() if a["mode"] == "cold")
    program = [e for e in events if e.get("app") == cold.app]
    assert cold.marks.decided == next(e["mono"] for e in program if e["kind"] == "load_started")
    stepped = [e["variant"] for e in program if e["kind"] == "progressive_step"]
    assert [s.variant for s in cold.steps] == stepped  # the stepping stone, then the planned backup
    assert cold.first_variant in stepped
    if cold.first_variant == stepped[0]:  # answered by the stone: its load is on the path
        assert cold.marks.loaded == next(
            e["mono"] for e in program if e["kind"] == "load_finished" and e["variant"] == stepped[0]
        )
        assert cold.load_ms is not None and cold.load_ms > 0


@pytest.mark.parametrize("module", ["phases", "phase_summary", "record", "stats", "accuracy_time"])
def test_pure_no_io_no_clock(module: str) -> None:
    """Pure functions of their inputs: only the standard library's pure modules are imported."""
    source = (Path(__file__).parents[2] / "faillite" / "bench" / f"{module}.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    pure = {"__future__", "math", "statistics", "collections.abc", "dataclasses", "typing"}
    assert imported <= pure | {"faillite.bench.phases", "faillite.bench.record", "faillite.bench.stats"}
