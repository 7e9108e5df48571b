"""Failure detection, layered: connection close (crash), heartbeat timeout (hang, partition),
and client suspicions (which shorten the wait). Pure: callers pass ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Detector", "Heartbeats", "Verdict"]


@dataclass
class Heartbeats:
    """What the controller has heard from one node's current connection."""

    epoch: int
    last_seen: float
    loaded: frozenset[str] = frozenset()
    used_bytes: int = 0
    suspected_at: float | None = None


@dataclass(frozen=True)
class Verdict:
    node: str
    reason: str
    silent_ms: float  # how long the node had been silent when declared dead


@dataclass(frozen=True)
class Detector:
    timeout_s: float  # no heartbeat for this long: dead
    suspect_timeout_s: float  # after a client's suspicion, no heartbeat for this long: dead

    def check(self, nodes: dict[str, Heartbeats], now: float) -> list[Verdict]:
        verdicts = []
        for node, hb in sorted(nodes.items()):
            silent = now - hb.last_seen
            if silent > self.timeout_s:
                verdicts.append(Verdict(node, f"no heartbeat for {silent * 1000:.0f} ms", silent * 1000))
            elif (
                hb.suspected_at is not None
                and hb.last_seen < hb.suspected_at
                and silent > self.suspect_timeout_s
            ):
                verdicts.append(
                    Verdict(node, f"suspected by a client, silent for {silent * 1000:.0f} ms", silent * 1000)
                )
        return verdicts

    def on_suspicion(self, hb: Heartbeats, now: float) -> Verdict | None:
        """A client could not reach the node: mark it, or condemn it at once if already silent."""
        if hb.suspected_at is None:
            hb.suspected_at = now
        silent = now - hb.last_seen
        if silent > self.suspect_timeout_s:
            return Verdict("", f"suspected by a client, silent for {silent * 1000:.0f} ms", silent * 1000)
        return None
