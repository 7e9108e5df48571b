"""Watching the simulated failures as the failover benchmark watches real ones.

Per failed node (``faillite.bench.failover.inject``): the apps it serves get a client with a
probe stream from ``probe_lead_s`` before the failure and the open-loop workload; every
``poll_s`` each app is checked with the benchmark's own ``settled_app`` (the controller's
``app_settled``, ``app_lost``, or quiet) and its probe stops once it settled; the observation
ends when every app settled or ``settle_timeout_s`` passed, and then says which apps are still
protected (``protected_share``). The result is the benchmark's ``Injection``, so the figures
are computed by the benchmark's own code (``faillite.bench.failover.outcome``). Only these apps
have clients: an app no failure touches sends nothing here, its serving timeline is the
controller's state.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from faillite.bench.failover.inject import Injection, protected_share
from faillite.bench.failover.settle import Settled, settled_app
from faillite.client.hedging import HedgeConfig
from faillite.controller.model import ControlState
from faillite.controller.planning import plan_to_json, shared_to_json
from faillite.controller.states import NodeState
from faillite.sim.agents import SimAgent
from faillite.sim.clients import AppClient
from faillite.sim.control import SimController
from faillite.sim.engine import Engine
from faillite.sim.routes import app_route
from faillite.sim.timing import SimTiming
from faillite.wire import RouteTable, RouteTarget

__all__ = ["Observer"]

_POLL_S = 0.05  # the benchmark polls the controller this often


@dataclass
class _Open:
    node: str
    kind: str
    failed_at: float
    affected: list[str]
    before: dict[str, dict[str, Any]]
    settled: dict[str, Settled] = field(default_factory=dict)
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # app -> (events, probe records)


class Observer:
    def __init__(
        self,
        engine: Engine,
        timing: SimTiming,
        controller: SimController,
        agents: Mapping[str, SimAgent],
        accuracy: Mapping[tuple[str, str], float],
        variant_accuracy: Mapping[str, float],
        *,
        seed: int,
        hedging: HedgeConfig | None = HedgeConfig(),  # noqa: B008 (frozen)
    ) -> None:
        self.engine, self.timing, self.controller, self.agents = engine, timing, controller, agents
        self.state: ControlState = controller.state
        self.accuracy, self.variant_accuracy = accuracy, variant_accuracy
        self.seed, self.hedging = seed, hedging
        self.clients: dict[str, AppClient] = {}
        self.injections: list[Injection] = []
        self._open: list[_Open] = []
        self._watching: dict[str, int] = {}  # app -> open injections it is in
        self._app_events: dict[str, list[dict[str, Any]]] = {}
        self._cursor = 0
        self._version = 0
        self._plan_key: Any = None
        self._by_app: Mapping[str, Any] = {}
        self._polling = False

    # clients and routes
    def client(self, app: str) -> AppClient:
        c = self.clients.get(app)
        if c is None:
            spec = self.state.apps[app]
            c = AppClient(
                app,
                self.engine,
                self.agents,
                self._suspect,
                rate=spec.rate,
                seed=zlib.crc32(f"{self.seed}:{app}".encode()),
                hedging=self.hedging,
                probe_deadline=self.timing.probe_deadline_s,
                answer_extra_ms=self.timing.answer_extra_ms,
            )
            self.clients[app] = c
            c.apply(self._table(app))
        return c

    def _plan(self) -> Mapping[str, Any]:
        if self._plan_key is not self.state.plan:
            self._plan_key, self._by_app = self.state.plan, self.state.plan.by_app()
        return self._by_app

    def _table(self, app: str) -> RouteTable:
        route = app_route(self.state, app, self._plan(), self.accuracy, self.variant_accuracy)
        return RouteTable(version=self._version, routes=(route,))

    def publish(self) -> None:
        """The controller pushed its route table: every watching client gets it."""
        self._version += 1
        for app, c in self.clients.items():
            if c.probing or self._watching.get(app):
                c.apply(self._table(app))

    def touch(self) -> None:
        """Called before anything a probe's next answer depends on changes."""
        for app, c in self.clients.items():
            if c.probing or self._watching.get(app):
                c.touch()

    def node_fault(self, node: str, crashed: bool) -> None:
        for app, c in self.clients.items():
            if c.probing or self._watching.get(app):
                c.node_fault(node, crashed)

    def _suspect(self, target: RouteTarget, reason: str) -> None:
        beating = self.agents[target.node].state == "up"
        self.engine.after(
            self.timing.route_push_s, self.controller.suspicion, target.node, target.epoch, reason, beating
        )

    # injections
    def served_on(self, node: str) -> list[str]:
        return sorted(
            a for a, s in self.state.serving.items() if s.replica is not None and s.replica.node == node
        )

    def lead(self, nodes: tuple[str, ...], failed_at: float) -> None:
        """``probe_lead_s`` before a failure: probes and workload for the apps those nodes serve."""
        for node in nodes:
            for app in self.served_on(node):
                self._watch(app, failed_at)

    def _watch(self, app: str, failed_at: float) -> None:
        c = self.client(app)
        self._watching[app] = self._watching.get(app, 0)
        c.start_probe()
        c.run_workload(failed_at + self.timing.settle_timeout_s)

    def failing(self, node: str, kind: str) -> None:
        """Right before ``node`` fails: what it serves, as the benchmark's ``/v1/apps`` view."""
        now = self.engine.now
        affected = self.served_on(node)
        before = {a: self._view(a) for a in affected}
        for app in affected:
            self._watch(app, now)
            self._watching[app] += 1
        self._open.append(_Open(node, kind, now, affected, before))
        if not self._polling:
            self._polling = True
            self.engine.after(_POLL_S, self._poll)

    def _view(self, app: str) -> dict[str, Any]:
        s = self.state.serving.get(app)
        spec = self.state.apps[app]
        asg = self._plan().get(app)
        replica = None if s is None else s.replica
        backup = None if asg is None or asg.backup is None else asg.backup
        return {
            "name": app,
            "state": None if s is None else s.state.value,
            "node": None if replica is None else replica.node,
            "variant": None if replica is None else replica.variant,
            "accuracy": None if replica is None else self.accuracy.get((spec.family, replica.variant)),
            "spec": spec.model_dump(mode="json"),
            "backup": None
            if backup is None
            else {"node": backup.node, "variant": backup.variant, "mode": backup.mode.value},
        }

    def _index(self) -> None:
        events = self.controller.events
        for e in events[self._cursor :]:
            app = e.get("app")
            if app is not None and self._watching.get(app) is not None:
                self._app_events.setdefault(app, []).append(e)
        self._cursor = len(events)

    def _poll(self) -> None:
        now = self.engine.now
        self._index()
        still: list[_Open] = []
        for inj in self._open:
            self._check(inj, now)
            if len(inj.settled) == len(inj.affected) or now >= inj.failed_at + self.timing.settle_timeout_s:
                self._close(inj, now)
            else:
                still.append(inj)
        self._open = still
        if still:
            self.engine.after(_POLL_S, self._poll)
        else:
            self._polling = False

    def _check(self, inj: _Open, now: float) -> None:
        for app in inj.affected:
            if app in inj.settled:
                continue
            events = self._app_events.get(app, [])
            probe = self.clients[app].probe_records
            mark = (len(events), len(probe))
            last = max((e["mono"] for e in events if e["mono"] >= inj.failed_at), default=inj.failed_at)
            if inj.seen.get(app) == mark and now - last < self.timing.quiet_s:
                continue  # nothing new, and not quiet long enough for the fallbacks
            inj.seen[app] = mark
            s = settled_app(
                app,
                events=events,
                view=self._view(app),
                probe=probe,
                failed_node=inj.node,
                failed_at=inj.failed_at,
                now=now,
                quiet_s=self.timing.quiet_s,
            )
            if s is not None:
                inj.settled[app] = s
                self._release(app, stop=False)

    def _release(self, app: str, *, stop: bool) -> None:
        """``app`` settled in one injection: its probe stops once no open injection needs it."""
        others = sum(1 for o in self._open if app in o.affected and app not in o.settled)
        if others == 0:
            self.clients[app].stop_probe()

    def _close(self, inj: _Open, now: float) -> None:
        for app in inj.affected:
            if app not in inj.settled:
                inj.settled[app] = Settled(app, "timeout", now, None, None, None)
            self._watching[app] -= 1
            if self._watching[app] == 0:
                c = self.clients[app]
                c.stop_probe()
                c.end_workload(now)
        views = [
            {"name": a, "node": None if s.replica is None else s.replica.node}
            for a, s in self.state.serving.items()
        ]
        alive = {n.id for n in self.state.nodes.values() if n.state is NodeState.ALIVE}
        share, bare = (
            protected_share(plan_to_json(self.state.plan), views, alive, shared_to_json(self.state.plan))
            if inj.affected
            else (None, [])
        )
        start = inj.failed_at - self.timing.probe_lead_s
        log = self.controller.events
        first = bisect.bisect_left(log, start, key=lambda e: e["mono"])
        events = log[first : bisect.bisect_right(log, now, key=lambda e: e["mono"])]
        self.injections.append(
            Injection(
                node=inj.node,
                kind=inj.kind,
                failed_at=inj.failed_at,
                until=now,
                before=inj.before,
                after={a: self._view(a) for a in inj.affected},
                affected=inj.affected,
                probes={
                    a: [r for r in self.clients[a].probe_records if r.start <= now] for a in inj.affected
                },
                settled=dict(inj.settled),
                events=events,
                protected_after=share,
                window=(start, now),
                extra={"unprotected_after": bare},
            )
        )

    @property
    def open(self) -> bool:
        return bool(self._open)

    def workload(self) -> list[Any]:
        return [r for c in self.clients.values() for r in c.work_records]

    def dropped(self) -> int:
        return sum(c.dropped for c in self.clients.values())
