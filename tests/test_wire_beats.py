"""The binary frames of the agent <-> controller link."""

from __future__ import annotations

import pytest

from faillite.wire import Beat, Confirm, Promise, parse_control_frame


def test_a_beat_is_twenty_two_bytes_and_round_trips() -> None:
    beat = Beat(seq=7, epoch=3, lag_ms=12, ack=2, confirm=True, session=0xDEADBEEF, pressure=63)
    frame = beat.pack()
    assert len(frame) == 22
    assert Beat.unpack(frame) == beat


def test_a_huge_lag_is_capped_not_an_error() -> None:
    assert Beat.unpack(Beat(1, 1, lag_ms=10**9).pack()).lag_ms == 65535


@pytest.mark.parametrize("frame", [b"", b"\x01" * 15, b"\x02" + b"\x00" * 15, b"x" * 40])
def test_a_malformed_beat_is_refused(frame: bytes) -> None:
    with pytest.raises(ValueError):
        Beat.unpack(frame)


def test_control_frames_round_trip() -> None:
    assert parse_control_frame(Promise(5, 123.456).pack()) == Promise(5, 123.456)
    assert parse_control_frame(Confirm(9, 2).pack()) == Confirm(9, 2)
    with pytest.raises(ValueError):
        parse_control_frame(b"\x07\x00")
