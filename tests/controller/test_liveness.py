"""The adaptive failure detector, replayed on arrival histories with an explicit clock.

Histories are arrival times (seconds) of one node's beats at the controller: regular (a quiet
box), jittered (a saturated box: beats late by a heavy-tailed delay, the agent reporting its
loop lag), paused (a node that stalls under load and resumes) and dead (beats stop).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from faillite.controller.liveness import Detector, Heartbeats, StallClock

DETECTOR = Detector()  # the defaults: what the demo and the benchmarks run with
INTERVAL = DETECTOR.interval_s


def regular(n: int = 200, start: float = 10.0) -> list[float]:
    rng = random.Random(1)
    return [start + i * INTERVAL + rng.uniform(0.0, 0.0005) for i in range(1, n + 1)]


def jittered(n: int = 400, start: float = 10.0, seed: int = 2) -> tuple[list[float], list[float]]:
    """Beats sent on time but delivered late by a scheduling delay (exponential, mean 8 ms,
    with one beat in 25 late by 40-120 ms), and the lag the agent reports for each."""
    rng = random.Random(seed)
    arrivals, lags = [], []
    last = start
    for i in range(1, n + 1):
        delay = rng.expovariate(1 / 0.008)
        if rng.random() < 0.04:
            delay += rng.uniform(0.04, 0.12)
        arrivals.append(max(start + i * INTERVAL + delay, last + 0.0001))
        lags.append(delay)
        last = arrivals[-1]
    return arrivals, lags


def replay(arrivals: list[float], lags: list[float] | None = None) -> tuple[Heartbeats, list[float]]:
    """Feed ``arrivals``; return the state and every time a verdict would have been due."""
    hb = DETECTOR.new(1, arrivals[0] - INTERVAL)
    false_alarms = []
    applied = 0  # the agent applies each promise and acknowledges it in its next beat
    for i, at in enumerate(arrivals):
        just_before = at - 1e-6
        if DETECTOR.judge("n", hb, just_before) is not None:
            false_alarms.append(at)
        DETECTOR.arrival(hb, at, lags[i] if lags else 0.0, acked=applied)
        promise = DETECTOR.next_promise(hb)
        if promise is not None:
            applied = promise[0]
    return hb, false_alarms


def test_a_regular_node_gets_a_timeout_near_its_floor_and_never_a_false_verdict() -> None:
    hb, false_alarms = replay(regular())
    assert false_alarms == []
    assert INTERVAL + DETECTOR.acceptable_pause_s < hb.dead_after < 0.15
    assert hb.dead_after == pytest.approx(DETECTOR.quiet_timeout_s(), abs=0.002)


def test_a_dead_node_is_declared_once_its_silence_passes_the_timeout() -> None:
    arrivals = regular()
    hb, _ = replay(arrivals)
    last = arrivals[-1]
    assert DETECTOR.check({"n": hb}, last + hb.dead_after - 0.001) == []
    verdicts = DETECTOR.check({"n": hb}, last + hb.dead_after + 0.001)
    assert [v.node for v in verdicts] == ["n"]
    assert "no heartbeat for" in verdicts[0].reason
    assert verdicts[0].silent_ms == pytest.approx((hb.dead_after + 0.001) * 1000)
    assert DETECTOR.next_deadline({"n": hb}) == pytest.approx(last + hb.dead_after)


def test_a_jittered_history_widens_the_timeout_and_gives_no_false_verdict() -> None:
    for seed in range(5):
        arrivals, lags = jittered(seed=seed)
        hb, false_alarms = replay(arrivals, lags)
        assert false_alarms == [], f"seed {seed}"
        assert hb.dead_after > DETECTOR.quiet_timeout_s() + 0.05
        # still declared when the node really stops
        assert DETECTOR.judge("n", hb, arrivals[-1] + DETECTOR.max_timeout_s + 0.001) is not None


def test_a_node_that_stalls_under_load_and_resumes_is_not_declared_dead() -> None:
    arrivals, lags = jittered()
    stall = 0.15  # the node stops for 150 ms (on top of its beat interval), then resumes
    resumed = arrivals[-1] + INTERVAL + stall
    _, false_alarms = replay([*arrivals, resumed, resumed + INTERVAL], [*lags, stall, 0.0])
    assert false_alarms == []
    # the same stall on a quiet node is a hang: declared
    quiet = regular()
    _, false_alarms = replay([*quiet, quiet[-1] + INTERVAL + stall])
    assert false_alarms == [quiet[-1] + INTERVAL + stall]


def test_the_stall_is_remembered_while_it_is_in_the_history() -> None:
    quiet = regular()
    hb, _ = replay([*quiet, quiet[-1] + 0.3])
    assert hb.dead_after >= 0.3 + DETECTOR.acceptable_pause_s  # one 300 ms gap seen: tolerated again


def test_the_agents_reported_loop_lag_widens_the_timeout() -> None:
    quiet = regular()
    calm, _ = replay(quiet)
    starved, _ = replay(quiet, [0.0] * (len(quiet) - 1) + [0.08])
    assert starved.dead_after == pytest.approx(calm.dead_after + 0.08, abs=0.001)


def test_the_timeout_has_a_ceiling_and_an_operator_floor() -> None:
    arrivals = [10.0 + i * 1.75 + (0.0 if i % 2 else 1.25) for i in range(1, 60)]  # 0.5 s, 3 s, ...
    hb, _ = replay(arrivals)
    assert hb.dead_after == DETECTOR.max_timeout_s
    floored = Detector(min_timeout_s=3.0)
    hb = floored.new(1, 0.0)
    assert hb.dead_after == 3.0
    assert floored.judge("n", hb, 2.9) is None


def test_a_suspicion_shortens_the_wait_until_a_beat_clears_it() -> None:
    hb, _ = replay(regular())
    last = hb.last_seen
    assert hb.suspect_after < hb.dead_after
    assert DETECTOR.on_suspicion(hb, last + 0.02) is None  # heard from 20 ms ago: just marked
    assert hb.suspected_at == last + 0.02
    assert DETECTOR.deadline(hb) == pytest.approx(last + max(hb.suspect_after, hb.floor()))
    between = last + (max(hb.suspect_after, hb.floor()) + hb.dead_after) / 2
    verdict = DETECTOR.judge("n", hb, between)
    assert verdict is not None and "suspected by a client" in verdict.reason
    DETECTOR.arrival(hb, last + 0.03)  # a beat after the suspicion: not dead
    assert DETECTOR.judge("n", hb, between) is None


def test_a_suspicion_about_an_already_silent_node_condemns_it_at_once() -> None:
    hb, _ = replay(regular())
    verdict = DETECTOR.on_suspicion(hb, hb.last_seen + hb.suspect_after + 0.001)
    assert verdict is not None and "suspected by a client" in verdict.reason


def test_no_verdict_comes_before_a_promise_the_agent_may_still_hold() -> None:
    arrivals, lags = jittered()
    hb, _ = replay(arrivals, lags)  # a widened timeout, promised to the agent
    high = hb.floor()
    assert high > 0.15
    calm = hb.last_seen
    version = hb.promises[-1][0]
    for i in range(1, 400):  # the node calms down: the timeout shrinks
        DETECTOR.arrival(hb, calm + i * INTERVAL, acked=version)
    lower = DETECTOR.next_promise(hb)
    assert lower is not None and lower[1] < high
    # until the agent acknowledges the lower promise, the controller keeps the higher one
    assert hb.floor() == high
    assert DETECTOR.judge("n", hb, hb.last_seen + (hb.dead_after + high) / 2) is None
    DETECTOR.arrival(hb, hb.last_seen + INTERVAL, acked=lower[0])
    assert hb.floor() == lower[1]
    assert DETECTOR.judge("n", hb, hb.last_seen + (hb.dead_after + high) / 2) is not None


def test_the_promise_covers_every_rule_and_is_resent_only_when_it_moves() -> None:
    hb, _ = replay(regular())
    assert DETECTOR.fence_after(hb) == min(hb.dead_after, hb.suspect_after)
    assert hb.floor() == pytest.approx(DETECTOR.fence_after(hb), rel=0.2)  # the promise in force
    assert DETECTOR.next_promise(hb) is None  # nothing moved
    DETECTOR.arrival(hb, hb.last_seen + 0.4, acked=hb.promises[-1][0])  # a long gap widens the timeout
    promise = DETECTOR.next_promise(hb)
    assert promise is not None and promise[1] == DETECTOR.fence_after(hb) > 0.39


def test_the_controllers_own_stalls_do_not_count_as_silence() -> None:
    clock = StallClock(tolerance_s=0.005)
    hb, _ = replay(regular())
    last = hb.last_seen
    clock.tick(due=last + 0.05, now=last + 0.35)  # the controller itself was not scheduled for 300 ms
    assert clock.stalled_s == pytest.approx(0.295)
    assert DETECTOR.judge("n", hb, clock.now(last + 0.35)) is None
    assert DETECTOR.judge("n", hb, last + 0.35) is not None  # the raw clock would have condemned it
    clock.tick(due=last + 0.4, now=last + 0.401)  # on time: nothing discounted
    assert clock.stalled_s == pytest.approx(0.295)


# Recorded: a real agent's beats at a stand-in controller on this 2-core box, 60 s quiet and
# 60 s beside three busy loops (``python -m tests.controller.record_beats``).
RECORDED = json.loads((Path(__file__).parent / "data" / "beats.json").read_text())


@pytest.mark.parametrize("phase", ["quiet", "saturated"])
def test_recorded_histories_give_no_false_verdict_and_a_dead_node_is_still_declared(phase: str) -> None:
    arrivals = [10.0 + t for t in RECORDED[phase]["arrivals"]]
    hb, false_alarms = replay(arrivals, RECORDED[phase]["lags"])
    assert false_alarms == []
    assert hb.dead_after < DETECTOR.max_timeout_s
    assert DETECTOR.judge("n", hb, arrivals[-1] + hb.dead_after + 0.001) is not None


def test_on_the_recorded_quiet_history_a_hang_is_declared_within_150_ms() -> None:
    arrivals = [10.0 + t for t in RECORDED["quiet"]["arrivals"]]
    hb, _ = replay(arrivals, RECORDED["quiet"]["lags"])
    assert hb.dead_after < 0.15


def test_cpu_pressure_on_the_agents_box_widens_the_timeout_of_a_regular_node() -> None:
    quiet = regular()
    calm, _ = replay(quiet)
    hb, _ = replay(quiet)
    DETECTOR.arrival(hb, quiet[-1] + INTERVAL, pressure=0.6)  # the box is saturated: 60 % PSI
    assert hb.dead_after > calm.dead_after + DETECTOR.pressure_pause_s * 0.5 / 0.9 - 0.005
    assert DETECTOR.judge("n", hb, hb.last_seen + 0.2) is None  # a 200 ms stall is tolerated
    DETECTOR.arrival(hb, hb.last_seen + INTERVAL, pressure=0.05)  # a few % is a quiet box
    assert hb.dead_after == pytest.approx(calm.dead_after, abs=0.005)
