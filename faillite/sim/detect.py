"""Heartbeats for the real detector (``faillite.controller.liveness.Detector``), built lazily.

Simulating every beat of 1,000 nodes every 60 ms would be most of a run's events and change
nothing: a node that beats regularly is never judged. So a node's detector state is built only
when it matters (it hangs, or a client suspects it): its history is the ``Detector.history``
beats before that instant, at the configured interval with seeded jitter
(``SimTiming.beat_jitter_s``), the last one at the last beat before the instant; the agent has
acknowledged the fence promise that history gives (as it does within a beat or two). The
verdicts are the detector's own (``judge``, ``on_suspicion``, ``deadline``).
"""

from __future__ import annotations

import random
import zlib

from faillite.controller.liveness import Detector, Heartbeats

__all__ = ["BeatModel"]


class BeatModel:
    def __init__(self, detector: Detector, jitter_s: float, seed: int) -> None:
        self.detector = detector
        self.jitter_s = jitter_s
        self.seed = seed
        self._hb: dict[tuple[str, int], Heartbeats] = {}

    def _phase(self, node: str, epoch: int) -> float:
        """Each node's beats start at its own offset within the interval (deterministic)."""
        h = zlib.crc32(f"{self.seed}:{node}:{epoch}".encode())
        return (h % 10_000) / 10_000 * self.detector.interval_s

    def last_beat(self, node: str, epoch: int, since: float, at: float) -> float:
        """The last beat at or before ``at`` of a node beating since ``since``."""
        interval = self.detector.interval_s
        start = since + self._phase(node, epoch)
        if at < start:
            return since
        return start + int((at - start) / interval) * interval

    def heartbeats(self, node: str, epoch: int, since: float, at: float) -> Heartbeats:
        """The detector's state of a node that beat regularly from ``since`` until ``at``
        (built once per node and epoch: later calls return the same state)."""
        key = (node, epoch)
        hb = self._hb.get(key)
        if hb is not None:
            return hb
        d = self.detector
        last = self.last_beat(node, epoch, since, at)
        rng = random.Random(zlib.crc32(f"{self.seed}:{node}:{epoch}:beats".encode()))
        n = min(d.history + 1, max(1, int((last - since) / d.interval_s) + 1))
        times = [last - k * d.interval_s for k in range(n)][::-1]
        jittered = [
            t + (rng.gauss(0.0, self.jitter_s) if 0 < i < n - 1 else 0.0) for i, t in enumerate(times)
        ]
        hb = d.new(epoch, jittered[0])
        for t in jittered[1:]:
            d.arrival(hb, t)
        hb.promises = [(1, d.fence_after(hb))]  # the promise this history gives, acknowledged
        hb.acked = 1
        self._hb[key] = hb
        return hb
