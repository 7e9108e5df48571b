"""The hedging policy, pure: delays from latency histories, SLO bounds and the floor, the budget
over a stretch of requests and of time, the burst, and the attempt timeout from the SLO."""

from __future__ import annotations

import pytest

from faillite.client.hedging import (
    DEFAULT_SLO_MS,
    AppHedging,
    HedgeBudget,
    HedgeConfig,
    HedgeStats,
    LatencyWindow,
    attempt_timeout,
    hedge_delay,
)

MS = 1e-3
CONFIG = HedgeConfig()


def window_of(samples_ms: list[float], size: int = 128, min_samples: int = 16) -> LatencyWindow:
    window = LatencyWindow(size, min_samples, every=1)
    for sample in samples_ms:
        window.record(sample * MS)
    return window


def test_no_history_waits_the_slo_bound() -> None:
    assert hedge_delay(None, None, 20, CONFIG) == pytest.approx(10 * MS)  # half the SLO
    assert hedge_delay(None, None, None, CONFIG) == pytest.approx(DEFAULT_SLO_MS / 2 * MS)


def test_steady_latency_hedges_at_three_medians() -> None:
    window = window_of([1.5] * 100)
    assert hedge_delay(window.p50, window.p99, 100, CONFIG) == pytest.approx(4.5 * MS)


def test_a_heavy_tail_hedges_at_the_p99() -> None:
    # 97 fast answers and 3 slow ones: the p99 (9 ms) is above 3 x p50 (3 ms).
    window = window_of([1.0] * 97 + [9.0] * 3)
    assert window.p50 == pytest.approx(1 * MS) and window.p99 == pytest.approx(9 * MS)
    assert hedge_delay(window.p50, window.p99, 100, CONFIG) == pytest.approx(9 * MS)


def test_fast_apps_are_floored_and_the_slo_bounds_slow_ones() -> None:
    fast = window_of([0.2] * 50)
    slow = window_of([30.0] * 50)
    assert hedge_delay(fast.p50, fast.p99, 100, CONFIG) == pytest.approx(CONFIG.floor_ms * MS)
    assert hedge_delay(slow.p50, slow.p99, 40, CONFIG) == pytest.approx(20 * MS)
    # An SLO tighter than the floor wins over it: an answer later than that already failed.
    assert hedge_delay(fast.p50, fast.p99, 2, CONFIG) == pytest.approx(1 * MS)


def test_the_window_forgets_old_latencies() -> None:
    window = window_of([50.0] * 32, size=32)
    assert window.p50 == pytest.approx(50 * MS)
    for _ in range(32):
        window.record(1 * MS)
    assert len(window) == 32 and window.p50 == pytest.approx(1 * MS) and window.p99 == pytest.approx(1 * MS)


def test_percentiles_wait_for_enough_samples_and_are_recomputed_every_few() -> None:
    window = LatencyWindow(size=64, min_samples=4, every=8)
    for _ in range(3):
        window.record(1 * MS)
    assert window.p50 is None and window.p99 is None
    window.record(1 * MS)
    assert window.p50 == pytest.approx(1 * MS)
    for _ in range(7):
        window.record(5 * MS)
    assert window.p99 == pytest.approx(1 * MS)  # cached: 7 samples since the last computation
    window.record(5 * MS)
    assert window.p99 == pytest.approx(5 * MS)


def test_an_idle_app_has_its_burst_so_an_isolated_hang_is_always_hedged() -> None:
    budget = HedgeBudget(ratio=0.05, burst=3, refill_s=10)
    budget.on_request(0.0)
    assert [budget.try_spend(0.0) for _ in range(4)] == [True, True, True, False]


def test_a_sustained_slowdown_gets_five_percent_more_requests() -> None:
    budget = HedgeBudget(ratio=0.05, burst=3, refill_s=10)
    hedges, requests = 0, 2000
    for i in range(requests):  # 2000 requests within one second, each wanting a hedge
        now = i * 0.0005
        budget.on_request(now)
        hedges += budget.try_spend(now)
    # burst + ratio x N + burst x T / refill_s: 3 + 100 + 0.3
    assert hedges == 103
    assert hedges <= 3 + 0.05 * requests + 3 * 1.0 / 10


def test_the_burst_comes_back_over_the_refill_time_not_beyond() -> None:
    budget = HedgeBudget(ratio=0.0, burst=3, refill_s=10)
    assert [budget.try_spend(0.0) for _ in range(3)] == [True, True, True]
    assert not budget.try_spend(3.0)  # 0.9 of a token back after 3 s
    assert budget.try_spend(4.0)  # 1.2 tokens
    assert budget.tokens == pytest.approx(0.2)
    budget.try_spend(1000.0)
    assert budget.tokens == pytest.approx(2.0)  # capped at the burst, then one spent


def test_a_clock_going_backwards_earns_nothing() -> None:
    budget = HedgeBudget(ratio=0.0, burst=2, refill_s=1)
    assert budget.try_spend(10.0) and budget.try_spend(10.0)
    assert not budget.try_spend(5.0) and not budget.try_spend(10.0)


def test_attempt_timeouts_come_from_the_slo() -> None:
    assert attempt_timeout(20, CONFIG) == pytest.approx(0.2)
    assert attempt_timeout(None, CONFIG) == pytest.approx(0.5)  # what the client used before SLOs
    assert attempt_timeout(1, CONFIG) == pytest.approx(CONFIG.min_timeout_s)


def test_per_app_state_and_stats() -> None:
    state = AppHedging(HedgeConfig(min_samples=2))
    assert state.delay(20) == pytest.approx(10 * MS)
    for _ in range(8):
        state.latency.record(1 * MS)
    assert state.delay(20) == pytest.approx(3 * MS)
    total = HedgeStats()
    total.add(HedgeStats(requests=10, hedges_sent=2, hedges_won=1, hedges_refused=3, suspected=1))
    total.add(HedgeStats(requests=5, hedges_sent=1))
    assert total == HedgeStats(requests=15, hedges_sent=3, hedges_won=1, hedges_refused=3, suspected=1)


@pytest.mark.parametrize(
    "changes", [{"window": 0}, {"min_samples": 200}, {"burst": 0.5}, {"ratio": -1}, {"slo_fraction": 0}]
)
def test_nonsense_configs_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HedgeConfig(**changes)  # type: ignore[arg-type]
