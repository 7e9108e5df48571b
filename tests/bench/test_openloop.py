"""The open-loop generator's arrivals: a Poisson process at the stated rate (seeded; no timing)."""

from __future__ import annotations

import numpy as np
import pytest

from faillite.bench.openloop import arrival_gaps, arrival_offsets


@pytest.mark.parametrize("rate", [2.0, 10.0, 30.0])
def test_arrival_counts_and_gaps_are_poisson(rate: float) -> None:
    horizon = 2000.0
    times = arrival_offsets(rate, horizon, seed=7)
    assert np.all(np.diff(times) > 0) and times[0] >= 0 and times[-1] < horizon
    n = len(times)
    # count ~ Poisson(rate * horizon): within 4 standard deviations
    expected = rate * horizon
    assert abs(n - expected) < 4 * np.sqrt(expected)
    gaps = np.diff(times)
    # exponential gaps: mean 1/rate, coefficient of variation 1
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)
    # counts per one-second bin: variance equals the mean (a Poisson process, not a paced one)
    counts = np.bincount(times.astype(int), minlength=int(horizon))
    assert counts.var() / counts.mean() == pytest.approx(1.0, rel=0.1)


def test_arrivals_are_reproducible_and_seed_dependent() -> None:
    a = arrival_offsets(5.0, 100.0, seed=1)
    assert np.array_equal(a, arrival_offsets(5.0, 100.0, seed=1))
    assert not np.array_equal(a, arrival_offsets(5.0, 100.0, seed=2))


def test_gaps_reject_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        arrival_gaps(0.0, np.random.default_rng(0), 3)


def test_load_refuses_an_app_without_a_rate() -> None:
    from faillite.bench.openloop import OpenLoopLoad

    with pytest.raises(ValueError, match="positive rate for every app: b"):
        OpenLoopLoad(None, {"a": {}, "b": {}}, {"a": 1.0})  # type: ignore[arg-type]
