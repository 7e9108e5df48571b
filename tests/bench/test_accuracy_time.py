"""Accuracy-time loss (faillite.bench.accuracy_time) on recorded probe streams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faillite.bench.accuracy_time import accuracy_time_loss, policy_loss
from faillite.bench.load import RequestRecord

T0 = 1000.0


def rec(app: str, start_ms: float, end_ms: float, node: str | None = None, accuracy: float | None = None,
        variant: str | None = "v") -> RequestRecord:  # fmt: skip
    ok = node is not None
    return RequestRecord(
        app, T0 + start_ms / 1000, T0 + end_ms / 1000, ok, node, variant if ok else None,
        accuracy if ok else None, None if ok else "no live target",
    )  # fmt: skip


def test_warm_app_until_settled() -> None:
    records = [
        rec("cam", -5.0, -1.0, "A", 0.95),
        rec("cam", -0.5, 151.0, "B", 0.90),
        rec("cam", 151.1, 152.0, "B", 0.9),
    ]
    loss = accuracy_time_loss(
        "cam", records, failed_node="A", failed_at=T0, until=T0 + 10.0, primary_accuracy=0.95,
        settled_at=T0 + 0.151,
    )  # fmt: skip
    assert loss.loss_point_s == pytest.approx(95.0 * 0.151)  # the full accuracy until the answer
    assert loss.window_s == pytest.approx(0.151)
    assert loss.recovered and loss.settled
    assert loss.first_drop_points == pytest.approx(5.0) and loss.last_drop_points == pytest.approx(5.0)
    assert loss.mean_loss_points == pytest.approx(95.0)


def test_cold_progressive_steps_until_settled() -> None:
    records = [
        rec("det", -1.0, 2.0),
        rec("det", 2.1, 61.0),
        rec("det", 61.0, 65.0, "C", 0.80),  # stone
        rec("det", 65.1, 299.0, "C", 0.80),
        rec("det", 299.1, 305.0, "C", 0.90),  # planned backup
        rec("det", 305.1, 3501.0, "C", 0.90),
        rec("det", 3501.0, 3505.0, "C", 0.95),  # settled: back to the primary's accuracy
        rec("det", 3505.1, 3510.0, "C", 0.95),
    ]
    loss = accuracy_time_loss(
        "det", records, failed_node="A", failed_at=T0, until=T0 + 10.0, primary_accuracy=0.95,
        settled_at=T0 + 3.505,
    )  # fmt: skip
    # 95 points for 65 ms, 15 for 240 ms, 5 for 3200 ms.
    assert loss.loss_point_s == pytest.approx(95 * 0.065 + 15 * 0.240 + 5 * 3.2)
    assert loss.first_drop_points == pytest.approx(15.0) and loss.last_drop_points == pytest.approx(0.0)
    assert loss.window_s == pytest.approx(3.505)


def test_unrecovered_app_loses_its_full_accuracy_for_the_window() -> None:
    records = [rec("seg", -1.0, 2000.0), rec("seg", 2000.1, 4000.0)]
    loss = accuracy_time_loss(
        "seg", records, failed_node="A", failed_at=T0, until=T0 + 5.0, primary_accuracy=0.9
    )
    assert loss.loss_point_s == pytest.approx(90.0 * 5.0)
    assert not loss.recovered and not loss.settled
    assert loss.first_drop_points is None


def test_recovered_but_not_settled_counts_to_the_end_of_the_window() -> None:
    records = [rec("x", -1.0, 100.0, "B", 0.85), rec("x", 100.0, 300.0), rec("x", 300.0, 400.0, "B", 0.85)]
    loss = accuracy_time_loss(
        "x", records, failed_node="A", failed_at=T0, until=T0 + 1.0, primary_accuracy=0.9
    )
    # 90 for 100 ms; 5 until the failed request at 300 ms; 90 again until 400 ms; 5 to the end.
    assert loss.loss_point_s == pytest.approx(90 * 0.1 + 5 * 0.2 + 90 * 0.1 + 5 * 0.6)
    assert loss.recovered and not loss.settled


def test_answers_from_the_failed_node_and_unknown_accuracy() -> None:
    records = [
        rec("x", -1.0, 1.0, "A", 0.9),  # left the failed node before it died: changes nothing
        rec("x", 1.0, 10.0, "B", None),  # the route did not say the accuracy
        rec("x", 10.0, 20.0, "B", 0.8),
    ]
    loss = accuracy_time_loss(
        "x",
        records,
        failed_node="A",
        failed_at=T0,
        until=T0 + 1.0,
        primary_accuracy=0.9,
        settled_at=T0 + 0.05,
    )
    assert loss.loss_point_s == pytest.approx(90 * 0.010 + 10 * 0.030)
    assert loss.unknown_s == pytest.approx(0.010)
    assert loss.first_drop_points is None and loss.last_drop_points == pytest.approx(10.0)


def test_units_and_bad_input() -> None:
    records = [rec("x", 0.0, 100.0, "B", 80.0)]
    loss = accuracy_time_loss(
        "x", records, failed_node="A", failed_at=T0, until=T0 + 0.2, primary_accuracy=90.0, unit="points"
    )
    assert loss.loss_point_s == pytest.approx(90 * 0.1 + 10 * 0.1)
    with pytest.raises(ValueError, match=r"answer accuracy 80\.0 is not in"):
        accuracy_time_loss("x", records, failed_node="A", failed_at=T0, until=T0 + 0.2, primary_accuracy=0.9)
    with pytest.raises(ValueError, match="before the failure"):
        accuracy_time_loss("x", records, failed_node="A", failed_at=T0, until=T0 - 1, primary_accuracy=0.9)
    with pytest.raises(ValueError, match="unit must be"):
        accuracy_time_loss("x", [], failed_node="A", failed_at=T0, until=T0, primary_accuracy=0.9, unit="pct")  # type: ignore[arg-type]


def test_a_better_stand_in_is_no_gain() -> None:
    records = [rec("x", 0.0, 100.0, "B", 0.99)]
    loss = accuracy_time_loss(
        "x", records, failed_node="A", failed_at=T0, until=T0 + 1.0, primary_accuracy=0.9
    )
    assert loss.loss_point_s == pytest.approx(90 * 0.1)


def test_policy_totals() -> None:
    a = accuracy_time_loss("a", [], failed_node="A", failed_at=T0, until=T0 + 2.0, primary_accuracy=0.5)
    b = accuracy_time_loss(
        "b",
        [rec("b", 0.0, 500.0, "B", 0.5)],
        failed_node="A",
        failed_at=T0,
        until=T0 + 2.0,
        primary_accuracy=0.5,
    )
    assert policy_loss([a, b]) == {"apps": 2, "sum_point_s": 125.0, "mean_point_s": 62.5, "unrecovered": 1}
    assert policy_loss([]) == {"apps": 0, "sum_point_s": 0, "mean_point_s": None, "unrecovered": 0}


@st.composite
def _stream(draw: st.DrawFn) -> list[RequestRecord]:
    at, out = T0 - 0.01, []
    for _ in range(draw(st.integers(0, 20))):
        end = at + draw(st.floats(0.0005, 0.5))
        ok = draw(st.booleans())
        node = draw(st.sampled_from(["A", "B"])) if ok else None
        out.append(
            RequestRecord(
                "x", at, end, ok, node, "v" if ok else None, draw(st.floats(0.0, 1.0)) if ok else None
            )
        )
        at = end
    return out


@settings(max_examples=300, deadline=None)
@given(_stream(), st.floats(0.0, 1.0), st.floats(0.0, 5.0), st.one_of(st.none(), st.floats(0.0, 5.0)))
def test_loss_is_bounded_by_the_full_accuracy_over_the_window(
    records: list[RequestRecord], primary: float, window: float, settle: float | None
) -> None:
    loss = accuracy_time_loss(
        "x", records, failed_node="A", failed_at=T0, until=T0 + window, primary_accuracy=primary,
        settled_at=None if settle is None else T0 + settle,
    )  # fmt: skip
    assert 0.0 <= loss.loss_point_s <= primary * 100 * loss.window_s + 1e-9
    assert loss.window_s <= window + 1e-12
    if not loss.recovered:
        assert loss.loss_point_s == pytest.approx(primary * 100 * loss.window_s)


def test_recorded_sigkill_of_a_real_cluster() -> None:
    """The probe records of a real failover (tests/bench/record_failover.py): the loss is at
    least the full accuracy until the first answer, at most the full accuracy over the window,
    and exactly the full accuracy until the first answer when that answer is the settled one."""
    doc = json.loads((Path(__file__).parent / "data" / "failover_sigkill.json").read_text())
    failure, records = doc["failure"], [RequestRecord(**r) for r in doc["records"]]
    settled = {e["app"]: e["variant"] for e in doc["events"] if e["kind"] == "app_settled"}
    losses = []
    for app, info in doc["apps"].items():
        answers = sorted(
            (
                r
                for r in records
                if r.app == app and r.ok and r.node != failure["node"] and r.end >= failure["at"]
            ),
            key=lambda r: r.end,
        )
        settled_at = next(r.end for r in answers if r.variant == settled[app])
        loss = accuracy_time_loss(
            app, records, failed_node=failure["node"], failed_at=failure["at"], until=doc["records_until"],
            primary_accuracy=info["accuracy"], settled_at=settled_at,
        )  # fmt: skip
        full = info["accuracy"] * 100
        outage = answers[0].end - failure["at"]
        assert loss.settled and loss.window_s == pytest.approx(settled_at - failure["at"])
        assert full * outage - 1e-9 <= loss.loss_point_s <= full * loss.window_s + 1e-9
        if answers[0].variant == settled[app]:
            assert loss.loss_point_s == pytest.approx(
                full * outage + max(full - answers[0].accuracy * 100, 0) * (settled_at - answers[0].end)
            )
        losses.append(loss)
    total = policy_loss(losses)
    assert total["apps"] == len(doc["apps"]) and total["unrecovered"] == 0
    assert total["sum_point_s"] == pytest.approx(sum(a.loss_point_s for a in losses), abs=1e-4)
