"""The routing policy, exhaustively: classification of every outcome, table versions, marks and
their scopes, expiry, demotion. Pure: no processes, no clock (``now`` is passed)."""

from __future__ import annotations

import pytest

from faillite.client.routing import Decision, Failure, RouteCache, Update, classify, endpoint_key
from faillite.wire import Route, RouteTable, RouteTarget

A = RouteTarget(node="a", url="http://a", model="big", epoch=1)
B = RouteTarget(node="b", url="http://b", model="small", epoch=1, role="backup")
C = RouteTarget(node="c", url="http://c", model="small", epoch=3, role="backup")


def table(version: int, **apps: tuple[RouteTarget, ...]) -> RouteTable:
    return RouteTable(
        version=version,
        routes=tuple(
            Route(app=app, state="serving" if t else "recovering", targets=t) for app, t in apps.items()
        ),
    )


def cache(*targets: RouteTarget, version: int = 1, cooldown: float = 1.0) -> RouteCache:
    routes = RouteCache(cooldown=cooldown)
    assert routes.update(table(version, cam=targets)) is Update.APPLIED
    return routes


# -- classify ---------------------------------------------------------------------------------

EXPECTED = {
    200: Decision.OK,
    204: Decision.OK,
    301: Decision.OK,
    400: Decision.REFUSED,
    401: Decision.REFUSED,
    403: Decision.REFUSED,
    404: Decision.REFUSED,
    405: Decision.REFUSED,
    409: Decision.FAILOVER,
    413: Decision.REFUSED,
    422: Decision.REFUSED,
    429: Decision.REFUSED,
    500: Decision.REFUSED,
    501: Decision.REFUSED,
    502: Decision.FAILOVER,
    503: Decision.FAILOVER,
    504: Decision.FAILOVER,
    Failure.CONNECTION: Decision.FAILOVER,
    Failure.TIMEOUT: Decision.SUSPECT,
}


@pytest.mark.parametrize(("outcome", "decision"), EXPECTED.items(), ids=str)
def test_classify_each_outcome(outcome: int | Failure, decision: Decision) -> None:
    assert classify(outcome) is decision


def test_classify_covers_every_status_and_failure() -> None:
    statuses = {s: classify(s) for s in range(100, 600)}
    assert {s for s, d in statuses.items() if d is Decision.FAILOVER} == {409, 502, 503, 504}
    assert {s for s, d in statuses.items() if d is Decision.OK} == set(range(100, 400))
    assert all(
        d is Decision.REFUSED for s, d in statuses.items() if s >= 400 and s not in {409, 502, 503, 504}
    )
    assert {classify(f) for f in Failure} == {Decision.FAILOVER, Decision.SUSPECT}


# -- tables and versions ----------------------------------------------------------------------


def test_empty_cache_knows_nothing() -> None:
    routes = RouteCache()
    assert routes.version is None
    assert routes.knows("cam") is None
    assert routes.next_target("cam", 0.0) is None
    assert routes.targets("cam") == ()
    assert routes.retry_at("cam", 0.0) is None


def test_first_target_is_served_and_unknown_apps_are_unknown() -> None:
    routes = cache(A, B)
    assert routes.knows("cam") is True and routes.knows("other") is False
    assert routes.next_target("cam", 0.0) == A
    assert routes.next_target("other", 0.0) is None


def test_recovering_app_without_targets_is_known_but_has_no_target() -> None:
    routes = RouteCache()
    routes.update(table(1, cam=()))
    assert routes.knows("cam") is True
    assert routes.next_target("cam", 0.0) is None


@pytest.mark.parametrize(("second", "expected"), [(0, Update.STALE), (1, Update.STALE), (2, Update.APPLIED)])
def test_only_newer_versions_replace_the_table(second: int, expected: Update) -> None:
    routes = cache(A, version=1)
    assert routes.update(table(second, cam=(B,))) is expected
    assert routes.version == (2 if expected is Update.APPLIED else 1)
    assert routes.next_target("cam", 0.0) == (B if expected is Update.APPLIED else A)


def test_a_stale_table_keeps_the_marks() -> None:
    routes = cache(A, B, version=5)
    routes.record("cam", A, Failure.CONNECTION, now=0.0)
    routes.update(table(4, cam=(A, B)))
    assert routes.next_target("cam", 0.1) == B


# -- marks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [Failure.CONNECTION, Failure.TIMEOUT, 409, 502, 503, 504])
def test_failed_target_is_skipped_for_the_next_one(outcome: int | Failure) -> None:
    routes = cache(A, B, C)
    assert routes.record("cam", A, outcome, now=10.0) in (Decision.FAILOVER, Decision.SUSPECT)
    assert routes.next_target("cam", 10.0) == B
    routes.record("cam", B, outcome, now=10.0)
    assert routes.next_target("cam", 10.0) == C
    routes.record("cam", C, outcome, now=10.0)
    assert routes.next_target("cam", 10.0) is None


@pytest.mark.parametrize("outcome", [200, 400, 404, 422, 500])
def test_answers_and_refusals_do_not_mark(outcome: int) -> None:
    routes = cache(A, B)
    assert routes.record("cam", A, outcome, now=0.0) in (Decision.OK, Decision.REFUSED)
    assert routes.next_target("cam", 0.0) == A
    assert routes.retry_at("cam", 0.0) is None


def test_marks_expire_after_the_cooldown() -> None:
    routes = cache(A, B, cooldown=2.0)
    routes.record("cam", A, Failure.TIMEOUT, now=10.0)
    assert routes.next_target("cam", 11.999) == B
    assert routes.next_target("cam", 12.0) == A


def test_a_newer_table_clears_marks_even_if_it_still_lists_the_target() -> None:
    routes = cache(A, B)
    routes.record("cam", A, Failure.CONNECTION, now=0.0)
    routes.record("cam", B, 503, now=0.0)
    assert routes.next_target("cam", 0.0) is None
    routes.update(table(2, cam=(A, B)))
    assert routes.next_target("cam", 0.0) == A


def test_connection_failure_and_timeout_mark_the_node_for_every_app() -> None:
    a_other = RouteTarget(node="a", url="http://a", model="other-model", epoch=1)
    for failure in Failure:
        routes = RouteCache()
        routes.update(table(1, cam=(A, B), mic=(a_other, C)))
        routes.record("cam", A, failure, now=0.0)
        assert routes.next_target("mic", 0.0) == C


def test_a_node_mark_is_for_its_epoch_only() -> None:
    a_next_epoch = A.model_copy(update={"epoch": 2})
    routes = RouteCache()
    routes.update(table(1, cam=(A, B), mic=(a_next_epoch, C)))
    routes.record("cam", A, Failure.CONNECTION, now=0.0)
    assert routes.next_target("mic", 0.0) == a_next_epoch


@pytest.mark.parametrize("status", [409, 503])
def test_stale_or_unavailable_replica_marks_that_app_only(status: int) -> None:
    routes = RouteCache()
    routes.update(table(1, cam=(A, B), mic=(A, C)))
    routes.record("cam", A, status, now=0.0)
    assert routes.next_target("cam", 0.0) == B
    assert routes.next_target("mic", 0.0) == A


def test_retry_at_is_when_the_first_marked_target_comes_back() -> None:
    routes = cache(A, B, cooldown=1.0)
    routes.record("cam", A, 503, now=5.0)
    routes.record("cam", B, 503, now=5.5)
    assert routes.retry_at("cam", 5.6) == 6.0
    assert routes.retry_at("cam", 6.0) == 6.5
    assert routes.retry_at("cam", 6.5) is None


def test_retry_at_waits_for_the_later_of_two_marks_on_one_target() -> None:
    routes = cache(A, cooldown=1.0)
    routes.record("cam", A, 503, now=0.0)  # app mark until 1.0
    routes.record("cam", A, Failure.CONNECTION, now=0.5)  # node mark until 1.5
    assert routes.retry_at("cam", 0.6) == 1.5
    assert routes.next_target("cam", 1.2) is None
    assert routes.next_target("cam", 1.5) == A


# -- demotion (abandoning requests in flight) ------------------------------------------------


@pytest.mark.parametrize(
    ("new_targets", "demoted"),
    [
        ((A, B), False),  # unchanged
        ((A.model_copy(update={"role": "backup", "accuracy": 0.5}), B), False),  # descriptive only
        ((B, A), True),  # failed over: A now a fallback
        ((B,), True),  # A dropped
        ((), True),  # app recovering
        ((A.model_copy(update={"epoch": 2}), B), True),  # new epoch: our request would get 409
        ((A.model_copy(update={"model": "tiny"}), B), True),  # switched variant
    ],
)
def test_primary_in_flight_is_demoted_when_the_table_moves_it(
    new_targets: tuple[RouteTarget, ...], demoted: bool
) -> None:
    routes = cache(A, B)
    rank = routes.rank("cam", A)
    assert rank == 0
    routes.update(table(2, cam=new_targets))
    assert routes.demoted("cam", A, rank) is demoted


def test_fallback_in_flight_is_not_demoted_by_an_unrelated_table() -> None:
    routes = cache(A, B)
    routes.record("cam", A, Failure.CONNECTION, now=0.0)
    target = routes.next_target("cam", 0.0)
    assert target == B and routes.rank("cam", B) == 1
    routes.update(table(2, cam=(A, B)))
    assert not routes.demoted("cam", B, 1)
    assert routes.demoted("cam", B, 0)


def test_rank_of_an_unlisted_target_is_none() -> None:
    assert cache(A).rank("cam", B) is None
    assert cache(A).rank("other", A) is None


def test_endpoint_key_ignores_role_and_accuracy() -> None:
    assert endpoint_key(A) == endpoint_key(A.model_copy(update={"role": "stone", "accuracy": 0.9}))
    assert endpoint_key(A) != endpoint_key(A.model_copy(update={"url": "http://a2"}))


# -- picking a target and a hedge's fallback ----------------------------------------------------


def test_pick_gives_the_rank_and_the_fallback_after_a_rank() -> None:
    routes = cache(A, B, C)
    assert routes.pick("cam", 0.0) == (0, A)
    assert routes.pick("cam", 0.0, after=0) == (1, B)  # where a hedge of a request to A goes
    assert routes.pick("cam", 0.0, after=2) is None
    assert routes.pick("mic", 0.0) is None
    assert routes.route("cam") is not None and routes.route("mic") is None


def test_pick_skips_marked_targets_and_is_marked_says_so() -> None:
    routes = cache(A, B, C)
    routes.record("cam", B, Failure.CONNECTION, now=0.0)
    assert routes.is_marked("cam", B, 0.5) and not routes.is_marked("cam", A, 0.5)
    assert routes.pick("cam", 0.5, after=0) == (2, C)  # the hedge skips the marked B
    assert not routes.is_marked("cam", B, 1.0)  # the mark expired
    assert routes.pick("cam", 1.0, after=0) == (1, B)


def test_routes_carry_the_apps_slo() -> None:
    routes = RouteCache()
    routes.update(RouteTable(version=1, routes=(Route(app="cam", state="serving", targets=(A,), slo_ms=20),)))
    route = routes.route("cam")
    assert route is not None and route.slo_ms == 20
    with pytest.raises(ValueError):
        Route(app="cam", state="serving", targets=(A,), slo_ms=0)
