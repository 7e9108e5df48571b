"""Hand-made controller states for the policy tests, and a small synchronous runner.

The runner carries the policy's effects out instantly in memory (agents load at once, or
refuse when ``refuse`` says so); it records every effect and every event, so tests can check
what the policy decided, and why, without processes or clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faillite.controller import policy
from faillite.controller.decide import Load, Replica, SetServing, Unload
from faillite.controller.effects import (
    Effect,
    Emit,
    EndProgram,
    PutNode,
    SetAgent,
    SetNodeState,
    SetPlan,
    SetUndesired,
    StartProgram,
    StartRecovery,
    Wait,
)
from faillite.controller.model import (
    LIVE_STATES,
    AgentView,
    ControlState,
    NodeRecord,
    PolicyConfig,
    Serving,
    planning_nodes,
)
from faillite.controller.planning import AppSpec, build_families, build_instance
from faillite.controller.reduce import apply
from faillite.controller.states import AppState, NodeState
from faillite.placement import Plan, PlannerParams, make_plan
from faillite.zoo.catalog import estimated_family_profiles

FAMILIES = build_families(estimated_family_profiles("digits"))
BIG, SMALL = "digits-mlp-256x128", "digits-mlp-4"
MIB = 1 << 20


def empty_state(**config: Any) -> ControlState:
    return ControlState(FAMILIES, PlannerParams(), PolicyConfig(**{"method": "greedy", **config}))


def add_node(
    state: ControlState,
    node: str,
    memory: int = 8 * MIB,
    *,
    domain: str | None = None,
    loaded: Iterable[str] = (),
) -> None:
    apply(
        state, PutNode(NodeRecord(node, f"http://{node}", memory, 1.0, domain, None, 1, NodeState.ALIVE), "t")
    )
    apply(state, SetAgent(node, AgentView(frozenset(loaded))))


def deployed(
    nodes: dict[str, int], apps: Sequence[AppSpec], *, policy_name: str = "faillite", **config: Any
) -> ControlState:
    """A cluster running its home plan: every primary and warm backup loaded, served PRIMARY."""
    state = empty_state(policy=policy_name, **config)
    for node, memory in nodes.items():
        add_node(state, node, memory, domain=node)
    for spec in apps:
        state.apps[spec.name] = spec  # hand-made: the setup, not a decision under test
    inst = build_instance(apps, planning_nodes(state), FAMILIES, state.params)
    result = make_plan(inst, method="greedy", policy=policy_name)
    assert result.plan is not None, result.reasons
    state.plan = state.home_plan = result.plan
    for a in result.plan:
        _hold(state, a.primary_node, a.primary_variant)
        if a.backup is not None and a.backup.mode.value == "warm":
            _hold(state, a.backup.node, a.backup.variant)
        state.serving[a.app] = Serving(AppState.PRIMARY, Replica(a.primary_node, a.primary_variant))
    for sf in result.plan.shared:
        _hold(state, sf.node, sf.variant)
    return state


def _hold(state: ControlState, node: str, variant: str) -> None:
    agent = state.agents[node]
    state.agents[node] = AgentView(agent.loaded | {variant}, agent.used_bytes, agent.connected)


def emitted(effects: Iterable[Effect], kind: str) -> list[dict[str, Any]]:
    """The fields of the events of ``kind`` among ``effects``."""
    return [dict(e.fields) for e in effects if isinstance(e, Emit) and e.kind.value == kind]


@dataclass
class World:
    """Runs the policy synchronously; ``refuse(replica) -> bool`` says which loads agents refuse."""

    state: ControlState
    refuse: Callable[[Replica], bool] = lambda _r: False
    now: float = 100.0
    effects: list[Effect] = field(default_factory=list)
    app_moves: list[tuple[AppState, AppState]] = field(default_factory=list)
    node_moves: list[tuple[NodeState, NodeState]] = field(default_factory=list)
    epochs: list[tuple[str, int | None, int]] = field(default_factory=list)
    plans: list[tuple[Plan, set[str]]] = field(default_factory=list)  # adopted, with the nodes live then

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            {"kind": e.kind.value, **e.fields}
            for e in self.effects
            if isinstance(e, Emit) and (kind is None or e.kind.value == kind)
        ]

    def run(self, effects: Iterable[Effect]) -> None:
        for effect in effects:
            self.effects.append(effect)
            self._observe(effect)
            apply(self.state, effect)
            if isinstance(effect, StartRecovery):
                self.recover(effect)
            elif isinstance(effect, StartProgram):
                self.program(effect.app)
            elif isinstance(effect, Unload):
                self.run(policy.unloaded(effect.replica, effect.reason))

    def _observe(self, effect: Effect) -> None:
        """Record the state changes the effect makes (before its application), for invariants."""
        if isinstance(effect, SetServing):
            before = self.state.serving.get(effect.app)
            if before is not None and before.state is not effect.state:
                self.app_moves.append((before.state, effect.state))
        elif isinstance(effect, SetNodeState):
            current = self.state.nodes[effect.node].state
            if current is not effect.state:
                self.node_moves.append((current, effect.state))
        elif isinstance(effect, PutNode):
            known = self.state.nodes.get(effect.record.id)
            self.epochs.append(
                (effect.record.id, None if known is None else known.epoch, effect.record.epoch)
            )
        elif isinstance(effect, SetPlan):
            live = {n.id for n in self.state.nodes.values() if n.state in LIVE_STATES}
            self.plans.append((effect.plan, live))

    def load(self, load: Load) -> bool:
        ok = not self.refuse(load.replica) and self.state.nodes[load.replica.node].state is not NodeState.DEAD
        self.run(
            policy.load_finished(self.state, load.replica, load.app, ok, self.now, ms=2.0, error="refused")
        )
        return ok

    def recover(self, start: StartRecovery) -> None:
        request = policy.recovery_request(self.state, start.dead)
        self.run(policy.recovery_programs(self.state, request.first(), start.cold))
        self.run(policy.reprotected(self.state, request.full(), start.dead))

    def program(self, app: str) -> None:
        loaded: bool | None = None
        for _ in range(100):
            effects = policy.program_step(self.state, app, self.now, loaded=loaded)
            loaded = None
            if not effects:
                return
            for effect in effects:
                self.run([effect])
                if isinstance(effect, Load):
                    loaded = self.load(effect)
                elif isinstance(effect, Wait):
                    self.now += effect.seconds
            if any(isinstance(e, EndProgram) and e.app == app for e in effects):
                return
        raise AssertionError(f"{app}'s program did not end")

    def settle(self, passes: int = 6) -> None:
        """Reconcile and climb passes, as the controller's loops run them, until quiet."""
        for _ in range(passes):
            self.reconcile()
            self.run(policy.climb_prelude(self.state, self.now))
            request = policy.climb_request(self.state, self.now)
            if request is not None:
                self.run(policy.climb_adopt(self.state, request, request.solve()))
        self.reconcile()

    def reconcile(self, rounds: int = 20) -> None:
        """Reconcile passes (loads in between) until nothing changes."""
        for _ in range(rounds):
            effects = policy.reconcile(self.state, self.now)
            since_changed = set(self.state.undesired_since) != set(effects[0].since)  # type: ignore[union-attr]
            self.run(effects)
            for effect in effects:
                if isinstance(effect, Load):
                    self.load(effect)
            self.run(policy.rejoined(self.state))
            self.run(policy.failback(self.state))
            self.now += self.state.config.unload_grace_s
            backing_off = any(t > self.now - 1.0 for t in self.state.retry_after.values())
            if all(isinstance(e, SetUndesired) for e in effects) and not backing_off and not since_changed:
                return
        raise AssertionError("reconcile did not settle")

    def register(self, node: str, epoch: int, loaded: Iterable[str] = ()) -> None:
        if reason := policy.fail_first(self.state, node, epoch):
            self.run(policy.node_dead(self.state, node, self.now, reason=reason))
        record = self.state.nodes.get(node)
        memory = 8 * MIB if record is None else record.memory_bytes
        domain = None if record is None else record.domain
        fields = {"url": f"http://{node}", "memory_bytes": memory, "cores": 1.0, "domain": domain, "pid": 1}
        self.run(policy.node_registered(self.state, node, epoch=epoch, loaded=loaded, **fields))

    def kill(self, node: str, silent_ms: float = 0.0) -> None:
        self.run(
            policy.node_dead(self.state, node, self.now - silent_ms / 1000, now=self.now, silent_ms=silent_ms)
        )
