"""Probe MTTR and settle time on recorded records (pure; no cluster)."""

from __future__ import annotations

import pytest

from faillite.bench.load import RequestRecord
from faillite.bench.probe import probe_outcome

F = 100.0  # the failure instant (monotonic seconds)


def rec(
    start: float, end: float, ok: bool = True, node: str | None = "b", variant: str = "v1", acc: float = 0.9
):
    return RequestRecord(
        "app", start, end, ok, node if ok else None, variant if ok else None, acc if ok else None
    )


def outcome(records: list[RequestRecord], settled: str | None = "v2"):
    return probe_outcome(
        records, app="app", failed_node="a", failed_at=F, until=F + 10, settled_variant=settled
    )


def test_mttr_from_the_failure_when_a_probe_request_was_in_flight() -> None:
    records = [
        rec(F - 0.002, F - 0.001, node="a", variant="v0", acc=0.95),  # before the failure
        rec(F - 0.001, F + 0.0305, ok=False),  # in flight at the failure: connection refused
        rec(F + 0.0305, F + 0.0421),  # first answer from another node
        rec(F + 0.0421, F + 0.500, variant="v2", acc=0.93),  # the settled variant
        rec(F + 0.500, F + 0.510, variant="v2", acc=0.93),
    ]
    o = outcome(records)
    assert o.origin == F
    assert o.mttr_ms == pytest.approx(42.1)
    assert (o.first_node, o.first_variant, o.first_accuracy) == ("b", "v1", 0.9)
    assert o.settle_ms == pytest.approx(500.0)
    assert o.settled_accuracy == 0.93
    assert o.failed_requests == 1
    assert [s[0] for s in o.steps] == ["v1", "v2"]
    assert o.timeline[0] == (pytest.approx(42.1), 0.9)


def test_mttr_from_the_next_request_when_the_one_in_flight_was_answered_by_the_failed_node() -> None:
    # the failed node's answer left it before it died: the pause until the next request is not
    # the system's doing
    records = [rec(F - 0.001, F + 0.0005, node="a"), rec(F + 0.003, F + 0.020)]
    o = outcome(records)
    assert o.origin == F + 0.003
    assert o.mttr_ms == pytest.approx(17.0)


def test_unrecovered_and_unsettled() -> None:
    records = [rec(F - 0.1, F + 5, ok=False), rec(F + 5, F + 10, ok=False)]
    o = outcome(records)
    assert o.origin == F and o.mttr_ms is None and o.first_variant is None
    assert o.settle_ms is None and o.failed_requests == 2 and o.timeline == ()
    # answered, but never by the settled variant
    o = outcome([rec(F - 0.1, F + 0.05)], settled="v9")
    assert o.mttr_ms == pytest.approx(50.0) and o.settle_ms is None


def test_answers_after_the_observation_do_not_count() -> None:
    o = outcome([rec(F - 0.1, F + 11)])
    assert o.mttr_ms is None
