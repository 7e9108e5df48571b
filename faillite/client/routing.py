"""The client's routing policy: which target an app's next request goes to, and what an outcome means.

Pure: no I/O, no clock (``now`` is an argument, in seconds on any monotonic scale), no asyncio,
so every rule is tested exhaustively without processes or time (STYLE §8). The send loop in
``faillite.client.failover`` asks ``RouteCache.next_target`` and reports outcomes back.

Rules:
- The cache holds the newest ``RouteTable`` only; an older or equal version is ignored (a
  reconnecting watch or a slow ``GET /v1/routes`` must never roll the routes back).
- ``targets[0]`` is where an app is served; later targets are warm fallbacks, tried in order.
- A target that failed locally is skipped until a newer table arrives (the controller's newer
  view wins, even if it still lists the target) or until ``cooldown`` seconds pass (so a
  controller-less client, or one whose controller is down, retries a recovered node).
- A connection failure or a timeout says the *node* is gone or hung: it marks the node (at that
  epoch) for every app, so other apps skip it at once. A 503 or a 409 (stale epoch) is about one
  replica: it marks the target for that app only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from faillite.wire import Route, RouteTable, RouteTarget

__all__ = [
    "Decision",
    "Failure",
    "RouteCache",
    "Update",
    "classify",
    "endpoint_key",
]


class Failure(enum.Enum):
    """An attempt that got no HTTP answer."""

    CONNECTION = "connection"  # refused, reset, closed: the process is gone
    TIMEOUT = "timeout"  # no answer in time: hung, partitioned, or just slow


class Decision(enum.Enum):
    OK = "ok"  # an answer to give to the caller
    REFUSED = "refused"  # the target answered with an error about the request: give it to the caller
    FAILOVER = "failover"  # the target cannot serve: retry at once on the next target
    SUSPECT = "suspect"  # no answer in time: retry on the next target, and tell the controller


# 409: the agent serves under another epoch (our route is stale). 503: replica or agent not
# serving (fenced, draining, not loaded). 502/504: a proxy in between could not reach it.
_FAILOVER_STATUSES = frozenset({409, 502, 503, 504})


def classify(outcome: int | Failure) -> Decision:
    """Map an HTTP status, or a failure to get one, to what the send loop does next.

    Any other 4xx means the request itself is wrong and would be refused everywhere. Any other
    5xx (500: a bug in the agent) is passed to the caller too, not failed over: a request that
    crashes one replica would crash its fallbacks and mark them all failed (a poison request).
    """
    if isinstance(outcome, Failure):
        return Decision.FAILOVER if outcome is Failure.CONNECTION else Decision.SUSPECT
    if outcome < 400:
        return Decision.OK
    if outcome in _FAILOVER_STATUSES:
        return Decision.FAILOVER
    return Decision.REFUSED


def endpoint_key(target: RouteTarget) -> tuple[str, str, str, int]:
    """What makes two targets the same place to send to (role and accuracy are descriptive)."""
    return (target.node, target.url, target.model, target.epoch)


class Update(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"  # not newer than the table held: ignored


@dataclass
class RouteCache:
    """The newest route table plus the targets this client saw fail since it arrived."""

    cooldown: float = 1.0
    table: RouteTable | None = None
    # Each mark holds the time it expires; a newer table clears them all.
    _app_marks: dict[tuple[str, tuple[str, str, str, int]], float] = field(default_factory=dict)
    _node_marks: dict[tuple[str, int], float] = field(default_factory=dict)
    _by_app: dict[str, Route] = field(default_factory=dict)  # the table's routes by app

    @property
    def version(self) -> int | None:
        return None if self.table is None else self.table.version

    def update(self, table: RouteTable) -> Update:
        if self.table is not None and table.version <= self.table.version:
            return Update.STALE
        self.table = table
        self._by_app = {route.app: route for route in table.routes}
        self._app_marks.clear()
        self._node_marks.clear()
        return Update.APPLIED

    def knows(self, app: str) -> bool | None:
        """Whether the table lists ``app``; None while no table has arrived yet."""
        if self.table is None:
            return None
        return app in self._by_app

    def route(self, app: str) -> Route | None:
        return self._by_app.get(app)

    def targets(self, app: str) -> tuple[RouteTarget, ...]:
        route = self._by_app.get(app)
        return () if route is None else route.targets

    def next_target(self, app: str, now: float) -> RouteTarget | None:
        """The first target of ``app`` not marked failed at ``now``; None when there is none."""
        picked = self.pick(app, now)
        return None if picked is None else picked[1]

    def pick(self, app: str, now: float, after: int = -1) -> tuple[int, RouteTarget] | None:
        """The first target of ``app`` ranked below ``after`` and not marked failed at ``now``, with
        its rank; None when there is none. ``after=rank`` of the target a request went to gives the
        fallback a hedge goes to."""
        targets = self.targets(app)
        if not self._app_marks and not self._node_marks:  # the common case: nothing failed
            return (after + 1, targets[after + 1]) if after + 1 < len(targets) else None
        for rank in range(after + 1, len(targets)):
            if not self._marked(app, targets[rank], now):
                return rank, targets[rank]
        return None

    def demoted(self, app: str, target: RouteTarget, rank: int) -> bool:
        """Whether the current table moved ``target`` (chosen at position ``rank``) down or out.

        A request in flight to a demoted target is abandoned: the controller failed it over (or
        moved the app), so waiting for the hung node's answer would only delay the retry.
        """
        now_rank = self.rank(app, target)
        return now_rank is None or now_rank > rank

    def rank(self, app: str, target: RouteTarget) -> int | None:
        """The position of ``target`` in ``app``'s route (None: not listed)."""
        key = endpoint_key(target)
        for rank, listed in enumerate(self.targets(app)):
            if listed is target or endpoint_key(listed) == key:
                return rank
        return None

    def record(self, app: str, target: RouteTarget, outcome: int | Failure, now: float) -> Decision:
        """Classify an attempt's outcome and mark the target when it should be skipped."""
        decision = classify(outcome)
        if decision in (Decision.FAILOVER, Decision.SUSPECT):
            if isinstance(outcome, Failure):
                self._node_marks[_node(target)] = now + self.cooldown
            else:
                self._app_marks[(app, endpoint_key(target))] = now + self.cooldown
        return decision

    def retry_at(self, app: str, now: float) -> float | None:
        """When the earliest mark on one of ``app``'s targets expires (None: no marked target).

        A send loop with no target waits for a newer table or this time, whichever comes first.
        """
        times = [until for target in self.targets(app) if (until := self._marked_until(app, target, now))]
        return min(times, default=None)

    def is_marked(self, app: str, target: RouteTarget, now: float) -> bool:
        """Whether ``target`` failed for ``app`` (or its node failed) and is skipped at ``now``."""
        if not self._app_marks and not self._node_marks:
            return False
        return self._marked(app, target, now)

    def _marked(self, app: str, target: RouteTarget, now: float) -> bool:
        return self._marked_until(app, target, now) is not None

    def _marked_until(self, app: str, target: RouteTarget, now: float) -> float | None:
        marks = (self._app_marks.get((app, endpoint_key(target))), self._node_marks.get(_node(target)))
        live = [until for until in marks if until is not None and until > now]
        return max(live, default=None)


def _node(target: RouteTarget) -> tuple[str, int]:
    return (target.node, target.epoch)
