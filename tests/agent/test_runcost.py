"""The inline-or-pool decision (pure): unknown cost goes to the pool, measured cheap runs
go inline, a request much larger than usual is predicted slower and goes back to the pool."""

from __future__ import annotations

from faillite.agent.runcost import DEFAULT_INLINE_BUDGET_S, RunCost, should_run_inline

BUDGET = DEFAULT_INLINE_BUDGET_S


def test_unknown_cost_goes_to_the_pool() -> None:
    cost = RunCost()
    assert cost.predict(64) is None
    assert not should_run_inline(cost.predict(64), BUDGET)


def test_first_run_is_not_counted() -> None:
    cost = RunCost()
    cost.record(0.05, 64)  # ONNX Runtime's first run: allocation, much slower than the rest
    assert cost.runs == 1 and cost.predict(64) is None
    cost.record(10e-6, 64)
    assert cost.predict(64) == 10e-6


def test_cheap_model_runs_inline_and_big_requests_do_not() -> None:
    cost = RunCost()
    for _ in range(5):
        cost.record(10e-6, 64)  # a digits MLP: ~10 µs for one row of 64 numbers
    assert should_run_inline(cost.predict(64), BUDGET)
    assert not should_run_inline(cost.predict(64 * 1000), BUDGET)  # 1000 rows: predicted 10 ms


def test_slow_model_goes_to_the_pool() -> None:
    cost = RunCost()
    for _ in range(5):
        cost.record(2e-3, 150_528)  # an image model: 2 ms per 224x224x3 input
    assert not should_run_inline(cost.predict(150_528), BUDGET)


def test_estimate_follows_a_model_that_got_slower() -> None:
    cost = RunCost()
    for _ in range(5):
        cost.record(10e-6, 64)
    assert should_run_inline(cost.predict(64), BUDGET)
    for _ in range(20):
        cost.record(1e-3, 64)  # e.g. bigger inputs of the same size class: runs now take 1 ms
    assert not should_run_inline(cost.predict(64), BUDGET)


def test_preempted_runs_do_not_send_a_cheap_model_to_the_pool() -> None:
    cost = RunCost()
    cost.record(1.0, 64)  # first run, not counted
    for i in range(40):
        # a loaded machine: half the runs are measured at 5 ms (the thread was preempted)
        cost.record(5e-3 if i % 2 else 10e-6, 64)
        if i >= 1:
            assert should_run_inline(cost.predict(64), BUDGET), i


def test_a_model_slow_most_of_the_time_goes_to_the_pool() -> None:
    cost = RunCost()
    cost.record(1.0, 64)
    for i in range(40):
        cost.record(10e-6 if i % 5 == 0 else 2e-3, 64)  # an occasional fast run is not its cost
    assert not should_run_inline(cost.predict(64), BUDGET)


def test_zero_budget_never_runs_inline() -> None:
    cost = RunCost()
    for _ in range(3):
        cost.record(1e-6, 1)
    assert not should_run_inline(cost.predict(1), 0.0)
    assert should_run_inline(cost.predict(1), BUDGET)


def test_empty_inputs_count_as_one_element() -> None:
    cost = RunCost()
    cost.record(1.0, 0)
    cost.record(20e-6, 0)
    assert cost.predict(0) == 20e-6
