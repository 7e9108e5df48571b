"""The agent's beat thread: the fence rule at each beat (pure), and a thread that survives a bug."""

from __future__ import annotations

import asyncio
import socket
import time

from faillite.agent.beats import BeatThread, beat_step
from faillite.wire import Beat

FENCE_AFTER = 0.15
INTERVAL = 0.06


def test_a_beat_on_time_does_not_fence_and_becomes_the_last_sent() -> None:
    step = beat_step(10.06, 10.0, FENCE_AFTER)
    assert not step.fence
    assert step.last_sent == 10.06


def test_a_silence_past_the_promise_fences() -> None:
    assert beat_step(10.2, 10.0, FENCE_AFTER).fence


def test_a_pause_between_the_check_and_the_send_still_fences_at_the_next_beat() -> None:
    # The beat thread checks at t=10.06 (on time), then is descheduled for 1 s before its
    # sendto: the controller hears nothing from 10.0 to 11.06 and may declare the node dead.
    check = beat_step(10.06, 10.0, FENCE_AFTER)
    assert not check.fence
    sent = 11.06  # when the datagram actually left
    # The next beat, one interval after the delayed send: the pause must not be wiped out.
    following = beat_step(sent + INTERVAL, check.last_sent, FENCE_AFTER)
    assert following.fence
    # (Taking the send time as "last sent", as before, would have hidden it.)
    assert not beat_step(sent + INTERVAL, sent, FENCE_AFTER).fence


class _FlakyLink:
    """A link whose promise version raises once: a bug inside the beat loop."""

    def __init__(self) -> None:
        self.last_sent = time.monotonic()
        self.loop_seen = time.monotonic()
        self.fence_after_s = 1e9
        self._must_confirm = False
        self._raised = False

    @property
    def promise_version(self) -> int:
        if not self._raised:
            self._raised = True
            raise RuntimeError("a bug in the beat loop")
        return 3

    def _paused(self) -> None:
        pass

    def _tick(self) -> None:
        pass


async def test_the_beat_thread_logs_an_unexpected_error_and_beats_on() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5.0)
    addr = (socket.AF_INET, socket.SOCK_DGRAM, 0, "", receiver.getsockname())
    link = _FlakyLink()
    thread = BeatThread(
        link, asyncio.get_running_loop(), addr, node_id="n1", epoch=7, session=42, interval_s=0.01
    )
    thread.start()
    try:
        data = await asyncio.to_thread(receiver.recv, 64)  # blocks up to the 5 s socket timeout
        beat = Beat.unpack(data)
        assert (beat.epoch, beat.session, beat.ack) == (7, 42, 3)
        assert thread.errors == 1
        assert thread.is_alive()
    finally:
        thread.stop()
        thread.join(5.0)
        receiver.close()
    assert not thread.is_alive()
