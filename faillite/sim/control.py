"""The simulated controller: a runner of the controller's pure policy on the simulated clock.

It owns one ``ControlState`` and does what ``faillite.controller.core`` does around the policy,
with simulated I/O: every decision is ``faillite.controller.policy``'s (or ``decide``'s, through
``policy.reconcile``) and every state change is ``faillite.controller.reduce.apply``'s. What is
the runner's own: when each step runs (the timing model, ``SimTiming``), carrying out effects
on the simulated agents, the event log, the route pushes, and detection (connection close for a
crash; the real detector, fed lazily built heartbeats, for a hang and for client suspicions).

Effects are applied and carried out in list order. A program's ``Load`` is awaited by the
program (its outcome goes to ``policy.load_finished`` and back to ``program_step``), ``Wait``
sleeps, an ``Unload`` is awaited; anything else and the program steps on at once. Late
outcomes of a cancelled program are dropped (the program's run id no longer matches).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from faillite.controller import policy
from faillite.controller.decide import Load, Unload
from faillite.controller.effects import (
    CancelProgram,
    Effect,
    Emit,
    EndProgram,
    PublishRoutes,
    StartProgram,
    StartRecovery,
    Wait,
    Wake,
)
from faillite.controller.liveness import Detector
from faillite.controller.model import ControlState
from faillite.controller.reduce import apply
from faillite.controller.states import InvalidTransition, NodeState
from faillite.sim.agents import SimAgent
from faillite.sim.detect import BeatModel
from faillite.sim.engine import Engine
from faillite.sim.focus import Focus
from faillite.sim.timing import SimTiming

__all__ = ["SimController"]

_LOAD_TIMEOUT_S = 60.0  # ControllerConfig.load_timeout_s: a load on a hung agent fails after it
_DETECT_SLACK_S = 0.002  # the detector wakes this long after the earliest deadline (core._detect_delay)
_SUSPECT_COOLDOWN_S = 1.0  # a client reports a node at most once per epoch and cooldown
_UP_SINCE_S = -3600.0  # the nodes of the initial cluster have beaten for an hour (a full history)


class SimController:
    def __init__(
        self,
        engine: Engine,
        timing: SimTiming,
        state: ControlState,
        agents: Mapping[str, SimAgent],
        detector: Detector,
        beats: BeatModel,
        *,
        publish: Callable[[], None],
    ) -> None:
        self.engine, self.timing, self.state, self.agents = engine, timing, state, agents
        self.detector, self.beats = detector, beats
        self.publish = publish  # push the route table to the clients
        self.events: list[dict[str, Any]] = []
        self.version = 0  # bumped by every state change (the climb loop sleeps while none)
        self.replans = 0  # planner calls (recovery, re-protection, settle)
        self.planner_seconds = 0.0  # their wall time (reported beside sim_seconds, never compared)
        # node -> when its current agent started beating (the cluster was up long before the run)
        self.beating_since: dict[str, float] = {}
        self._reconcile_at = math.inf
        self._push_at = math.inf
        self._climb_next = math.inf
        self._climb_idle_version = -1
        self._suspected: dict[tuple[str, int], float] = {}
        self.task_errors: list[dict[str, Any]] = []  # steps that raised (the controller logs them)
        self.focus = Focus(state)
        self.full_passes = False  # reconcile on the whole state (tests compare the two)

    @property
    def now(self) -> float:
        return self.engine.now

    # effects
    def execute(self, effects: list[Effect], program: str | None = None) -> None:
        """Apply each effect and carry out its I/O; ``program``: the app whose program returned
        them (its Load, Wait and Unload are awaited, then the program steps on)."""
        run = None
        if program is not None and (p := self.state.programs.get(program)) is not None:
            run = p.run
        waits = False
        for e in effects:
            self.focus.before(e)
            try:
                apply(self.state, e)
            except InvalidTransition as exc:  # the controller logs it; its task or step ends
                self._task_failed(program, run, f"{type(e).__name__}: {exc}")
                return
            self.focus.after(e)
            if not isinstance(e, Emit):
                self.version += 1
            if isinstance(e, Emit):
                self._emit(e)
            elif isinstance(e, Load):
                if program is not None and e.app == program:
                    waits = True
                    self._load(e, lambda ok, why, ms, e=e, run=run: self._program_loaded(e, run, ok, why, ms))
                else:
                    self._load(e, lambda ok, why, ms, e=e: self._loaded(e, ok, why, ms))
            elif isinstance(e, Unload):
                if program is not None:
                    waits = True
                    self._unload(e, lambda e=e, run=run: self._program_on(program, run))
                else:
                    self._unload(e, None)
            elif isinstance(e, Wait):
                waits = True
                self.engine.after(e.seconds, self._program_on, e.app, run)
            elif isinstance(e, StartRecovery):
                self.engine.after(self.timing.recovery_plan_s, self._recover, e.dead, e.cold)
            elif isinstance(e, StartProgram):
                self.engine.after(0.0, self._program_on, e.app, self.state.programs[e.app].run)
            elif isinstance(e, PublishRoutes):
                self._push()
            elif isinstance(e, Wake):
                self.wake()
        if program is None or waits:
            return
        if not effects or any(
            isinstance(e, EndProgram | CancelProgram) and e.app == program for e in effects
        ):
            return
        self._program_on(program, run)  # nothing to await: the program steps on

    def _task_failed(self, program: str | None, run: int | None, error: str) -> None:
        """What the controller does when a step raises: a program's task ends (its ``finally``
        drops the program and wakes the loop); a loop step is logged and the loop goes on."""
        self.task_errors.append({"mono": self.now, "program": program, "error": error})
        if program is not None:
            self.execute([EndProgram(program, run, "the program's task failed"), Wake("program ended")])

    def _emit(self, e: Emit) -> None:
        self.events.append({"id": len(self.events) + 1, "kind": e.kind.value, "mono": self.now, **e.fields})

    def _push(self) -> None:
        at = self.now + self.timing.route_push_s
        if self._push_at <= at and self._push_at >= self.now:
            return  # a push is already on its way and will carry this change
        self._push_at = at
        self.engine.at(at, self._pushed)

    def _pushed(self) -> None:
        self._push_at = math.inf
        self.publish()

    # agents
    def _load(self, e: Load, done: Callable[[bool, str, float], None]) -> None:
        agent = self.agents[e.replica.node]
        started = self.now
        if agent.state == "crashed":
            at = max(self.now, (agent.crashed_at or self.now) + self.timing.crash_close_s)
            self.engine.at(at, done, False, "connection closed", 0.0)
            return
        if agent.state == "hung":
            self.engine.after(_LOAD_TIMEOUT_S, done, False, "load timed out", 0.0)
            return
        agent.load(e.replica.variant, lambda ok, why: done(ok, why, (self.now - started) * 1000))

    def _loaded(self, e: Load, ok: bool, why: str, ms: float) -> None:
        effects = policy.load_finished(self.state, e.replica, e.app, ok, self.now, ms=round(ms, 2), error=why)
        self.execute(effects + self._status(e.replica.node))

    def _program_loaded(self, e: Load, run: int | None, ok: bool, why: str, ms: float) -> None:
        p = self.state.programs.get(e.app)
        if p is None or p.run != run:  # cancelled: only what the agent now holds is news
            self.execute(self._status(e.replica.node))
            return
        effects = policy.load_finished(self.state, e.replica, e.app, ok, self.now, ms=round(ms, 2), error=why)
        self.execute(effects + self._status(e.replica.node))
        self.engine.after(self.timing.publish_s, self._program_on, e.app, run, ok)  # the task resumes

    def _unload(self, e: Unload, then: Callable[[], None] | None) -> None:
        agent = self.agents[e.replica.node]
        if agent.state != "up":  # the controller logs the failed call and goes on
            if then is not None:
                self.engine.after(self.timing.refusal_s, then)
            return

        def done(ok: bool, why: str) -> None:
            self.execute(policy.unloaded(e.replica, e.reason) + self._status(e.replica.node))
            if then is not None:
                then()

        agent.unload(e.replica.variant, done)

    def _status(self, node: str) -> list[Effect]:
        agent = self.agents[node]
        if agent.state != "up" or self.state.nodes[node].epoch != agent.epoch:
            return []
        return policy.agent_status(self.state, node, sorted(agent.loaded), agent.used)

    # programs and recovery
    def _program_on(self, app: str, run: int | None, loaded: bool | None = None) -> None:
        p = self.state.programs.get(app)
        if p is None or p.run != run:
            return
        self.execute(policy.program_step(self.state, app, self.now, loaded=loaded), program=app)

    def _recover(self, dead: tuple[str, ...], cold: tuple[str, ...]) -> None:
        request = policy.recovery_request(self.state, dead)
        self.replans += 1
        try:
            first = self._timed(request.first)
        except Exception as exc:  # the controller logs it and gives the apps up
            self.execute(policy.recovery_failed(self.state, cold, str(exc)))
            return
        self.execute(policy.recovery_programs(self.state, first, cold))
        self.engine.after(self.timing.reprotect_s, self._reprotect, request, first, dead)

    def _reprotect(self, request: policy.RecoveryRequest, first: Any, dead: tuple[str, ...]) -> None:
        self.replans += 1
        try:
            full = self._timed(request.full)
        except Exception:  # apps stay unprotected, as in the controller
            full = first
        self.execute(policy.reprotected(self.state, full, dead))

    def _timed(self, call: Callable[[], Any]) -> Any:
        """A planner call, its wall time counted apart (``planner_seconds``: not in results)."""
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.planner_seconds += time.perf_counter() - started

    # the reconcile loop
    def wake(self) -> None:
        at = self.now + self.timing.reconcile_s
        if self.now <= self._reconcile_at <= at:
            return
        self._reconcile_at = at
        self.engine.at(at, self._reconcile)

    def _reconcile(self) -> None:
        if self.engine.now < self._reconcile_at:
            return  # superseded by an earlier one
        self._reconcile_at = math.inf
        view = self.state if self.full_passes else self.focus.view()
        effects = policy.reconcile(view, self.now)
        self.focus.begin()
        self.execute(effects)
        self.focus.passed(effects, self.now)
        self.execute(policy.rejoined(self.state))
        self.execute(policy.failback(self.state))
        # the loop also runs every reconcile interval: only time-based conditions need it here
        now = self.now
        if self.state.undesired_since or any(t > now for t in self.state.retry_after.values()):
            at = now + self.timing.reconcile_interval_s
            if at < self._reconcile_at:
                self._reconcile_at = at
                self.engine.at(at, self._reconcile)
        self.climb_soon()

    # the climb loop (every climb interval while there may be something to climb)
    def climb_soon(self) -> None:
        if self.version == self._climb_idle_version or self._climb_next < math.inf:
            return
        step = self.timing.climb_interval_s
        self._climb_next = (math.floor(self.now / step) + 1) * step
        self.engine.at(self._climb_next, self._climb)

    def _climb(self) -> None:
        self._climb_next = math.inf
        self.execute(policy.climb_prelude(self.state, self.now))
        request = policy.climb_request(self.state, self.now)
        if request is None:
            self._climb_idle_version = self.version
            blocked = [t for t in self.state.climb_blocked.values() if t > self.now]
            if blocked:
                self._climb_idle_version = -1
                self._climb_next = min(blocked)
                self.engine.at(self._climb_next, self._climb)
            elif self.state.programs or self.state.reprotecting or self.state.climbing:
                self._climb_idle_version = -1
                self.climb_soon()
            return
        self._climb_next = self.now + self.timing.settle_s  # no other pass while settle runs
        self.engine.after(self.timing.settle_s, self._settled, request)

    def _settled(self, request: policy.ClimbRequest) -> None:
        self.replans += 1
        result = self._timed(request.solve)
        self._climb_next = math.inf
        self.execute(policy.climb_adopt(self.state, request, result))
        self._climb_idle_version = -1
        self.climb_soon()

    # detection
    def connection_closed(self, node: str) -> None:
        """A crashed node's agent connection closed: declared dead at once."""
        self.execute(policy.node_dead(self.state, node, self.now, now=self.now, reason="connection closed"))
        self.climb_soon()

    def stopped_beating(self, node: str, at: float) -> None:
        """``node`` hangs from ``at``: judge it at the detector's deadline."""
        self._judge_at(node, at)

    def _heartbeats(self, node: str, at: float) -> Any:
        return self.beats.heartbeats(
            node, self.state.nodes[node].epoch, self.beating_since.get(node, _UP_SINCE_S), at
        )

    def _judge_at(self, node: str, at: float) -> None:
        record = self.state.nodes.get(node)
        if record is None or record.state not in (NodeState.ALIVE, NodeState.SUSPECT):
            return
        hb = self._heartbeats(node, at)
        self.engine.at(self.detector.deadline(hb) + _DETECT_SLACK_S, self._judge, node, record.epoch)

    def _judge(self, node: str, epoch: int) -> None:
        record = self.state.nodes.get(node)
        if (
            record is None
            or record.epoch != epoch
            or record.state not in (NodeState.ALIVE, NodeState.SUSPECT)
        ):
            return
        hb = self._heartbeats(node, self.now)
        verdict = self.detector.judge(node, hb, self.now)
        if verdict is None:
            self.engine.at(
                max(self.detector.deadline(hb), self.now) + _DETECT_SLACK_S, self._judge, node, epoch
            )
            return
        failed_at = self.now - verdict.silent_ms / 1000
        effects = policy.node_dead(
            self.state, node, failed_at, now=self.now, reason=verdict.reason, silent_ms=verdict.silent_ms
        )
        self.execute(effects)
        self.climb_soon()

    def suspicion(self, node: str, epoch: int, reason: str, beating: bool) -> None:
        """A client could not reach ``node`` (``faillite.controller.links.suspect``)."""
        key = (node, epoch)
        if self._suspected.get(key, -math.inf) > self.now:
            return
        self._suspected[key] = self.now + _SUSPECT_COOLDOWN_S
        record = self.state.nodes.get(node)
        if (
            record is None
            or record.epoch != epoch
            or record.state not in (NodeState.ALIVE, NodeState.SUSPECT)
        ):
            return
        self.execute(policy.node_suspected(self.state, node, reason))
        hb = self._heartbeats(node, self.now)
        if beating:  # its beats flow: the next one clears the suspicion
            since = self.beating_since.get(node, _UP_SINCE_S)
            hb.last_seen = self.beats.last_beat(node, epoch, since, self.now)
        verdict = self.detector.on_suspicion(hb, self.now)
        if verdict is not None:
            effects = policy.node_dead(
                self.state,
                node,
                self.now - verdict.silent_ms / 1000,
                now=self.now,
                reason=verdict.reason,
                silent_ms=verdict.silent_ms,
            )
            self.execute(effects)
            self.climb_soon()
            return
        self.engine.at(self.detector.deadline(hb) + 0.001, self._judge, node, epoch)

    # rejoin
    def registered(self, agent: SimAgent, url: str) -> None:
        """``agent`` (restarted) registers: a node declared dead rejoins under the next epoch."""
        node = agent.node
        reason = policy.fail_first(self.state, node, 0)
        if reason is not None:
            self.execute(policy.node_dead(self.state, node, self.now, now=self.now, reason=reason))
        record = self.state.nodes[node]
        effects = policy.node_registered(
            self.state,
            node,
            url=url,
            memory_bytes=record.memory_bytes,
            cores=record.cores,
            domain=record.domain,
            pid=None,
            epoch=0,
            loaded=(),
        )
        self.execute(effects)
        agent.epoch = self.state.nodes[node].epoch
        self.beating_since[node] = self.now
        self.climb_soon()
