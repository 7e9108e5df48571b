"""Failure detection from heartbeats and suspicions, with an explicit clock."""

from __future__ import annotations

import pytest

from faillite.controller.liveness import Detector, Heartbeats

DETECTOR = Detector(timeout_s=0.09, suspect_timeout_s=0.04)


def test_silence_beyond_the_timeout_is_death() -> None:
    beats = {"a": Heartbeats(1, last_seen=10.0), "b": Heartbeats(1, last_seen=10.05)}
    assert DETECTOR.check(beats, 10.08) == []
    verdicts = DETECTOR.check(beats, 10.1)
    assert [v.node for v in verdicts] == ["a"]
    assert verdicts[0].silent_ms == pytest.approx(100.0)
    assert "no heartbeat for 100 ms" in verdicts[0].reason


def test_a_suspicion_shortens_the_wait_until_a_heartbeat_clears_it() -> None:
    hb = Heartbeats(1, last_seen=10.0)
    assert DETECTOR.on_suspicion(hb, 10.02) is None  # heard from 20 ms ago: just marked
    assert hb.suspected_at == 10.02
    assert [v.node for v in DETECTOR.check({"a": hb}, 10.05)] == ["a"]  # 50 ms > 40 ms after suspicion
    hb.last_seen = 10.03  # a heartbeat after the suspicion: not dead (the caller clears the mark)
    assert DETECTOR.check({"a": hb}, 10.05) == []


def test_a_suspicion_about_an_already_silent_node_condemns_it_at_once() -> None:
    verdict = DETECTOR.on_suspicion(Heartbeats(1, last_seen=10.0), 10.06)
    assert verdict is not None and "suspected by a client" in verdict.reason
