"""Smoke test of ``faillite bench planner --quick``: invariants only, never timings."""

from __future__ import annotations

import pytest

from faillite.bench.planner import run_benchmark, summarize


@pytest.mark.slow
def test_quick_benchmark_invariants() -> None:
    rows = run_benchmark(quick=True, seeds=1, time_limit_s=5.0, slack=1.3, workers=1, echo=False)
    summary = summarize(rows)
    assert [(s["apps"], s["nodes"]) for s in summary] == [(10, 4), (30, 6), (400, 40)]
    for s in summary:
        assert s["violations"] == 0
        assert s["exact_below_greedy"] == 0
    for r in rows:
        assert r.greedy_objective is not None and r.greedy_objective > 0
        if r.gap is not None:
            assert r.gap >= -1e-9  # greedy never beats a proven optimum or bound
