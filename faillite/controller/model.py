"""The controller's state: ONE typed structure (``ControlState``), owned by whoever runs the policy.

The real controller (``faillite.controller.core.Controller``) owns one instance and persists
part of it (nodes, apps, serving, plans) in its SQLite store; the simulator owns another, in
memory. Nobody mutates it but ``faillite.controller.reduce.apply``: the policy
(``faillite.controller.policy``) reads it and returns effects, the runner applies them.

Pure: no I/O, no clock (times are seconds on the caller's monotonic clock, passed in).

What each field means:

- ``nodes``: the node registry (``NodeRecord``: url, memory, domain, epoch, state).
- ``apps``: the app specs users declared; ``plan``: where each app runs now and its backup;
  ``home_plan``: the plan with every node up (failback restores it).
- ``serving``: per app, where traffic goes now (``Serving``: state, replica, stepping stone?).
- ``agents``: per node with a current (or, after a restart, awaited) agent session, what the
  agent reports: models loaded, bytes used, and whether its connection is open.
- ``loading``: per node, variants whose load is in flight; ``retry_after``: a refused load is
  not retried before this time; ``undesired_since``: loaded replicas no app needs, since when
  (they are unloaded after the grace period).
- ``programs``: apps whose failover program runs (``Program``: its steps and position; a
  program is ``planning`` while the recovery replan runs); ``pinned``: replicas a running
  program needs kept loaded.
- ``failed_at``: app -> (failure time, node) until the app answers again (MTTR).
- ``climbing``: app -> its assignment before a climb back; ``climb_blocked``: app -> no climb
  before this time; ``settled``: app -> where ``app_settled`` said it settled.
- ``reprotecting``: re-protection replans in flight; ``failback_due``: a node rejoined.

``desired(state)`` and ``observed(state, now)`` build the inputs of the steady-state rule
``faillite.controller.decide.decide``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from faillite.controller.decide import Desired, NodeView, Observed, Replica
from faillite.controller.planning import AppSpec
from faillite.controller.states import AppState, NodeState
from faillite.placement import Action, Assignment, Family, Node, Plan, PlannerParams

__all__ = [
    "LIVE_STATES",
    "AgentView",
    "ControlState",
    "NodeRecord",
    "PolicyConfig",
    "Program",
    "Serving",
    "desired",
    "live_nodes",
    "observed",
    "planning_nodes",
]

LIVE_STATES = (NodeState.ALIVE, NodeState.SUSPECT)


@dataclass(frozen=True)
class NodeRecord:
    id: str
    url: str
    memory_bytes: int
    cores: float
    domain: str | None
    pid: int | None
    epoch: int
    state: NodeState


@dataclass(frozen=True)
class Serving:
    """Where an app is served from now, and in which state it is."""

    state: AppState
    replica: Replica | None = None
    stone: bool = False  # the replica is a progressive failover's stepping stone

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "replica": None if self.replica is None else asdict(self.replica),
            "stone": self.stone,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Serving:
        replica = doc.get("replica")
        return cls(
            AppState(doc["state"]), None if replica is None else Replica(**replica), doc.get("stone", False)
        )


@dataclass(frozen=True)
class AgentView:
    """What one node's agent reported (absent: no session since the node was declared dead)."""

    loaded: frozenset[str] = frozenset()
    used_bytes: int = 0
    connected: bool = True  # False: awaited after a controller restart, not heard from yet


@dataclass(frozen=True)
class Program:
    """One app's failover program: placement actions run in order (see ``policy.programs``)."""

    app: str
    run: int  # identifies this run: a cancelled run's late outcome must not move a newer one
    steps: tuple[Action, ...] = ()
    planning: bool = True  # the recovery replan has not given the steps yet
    position: int = 0  # the next step to interpret
    failed: frozenset[tuple[str | None, str | None]] = frozenset()  # (node, variant) loads refused
    switched: int = 0  # switches done (the progressive_step number)
    waited: bool = False  # the UNLOAD step at ``position`` has had its grace period
    awaiting: bool = False  # the LOAD step at ``position`` is in flight (its outcome is fed back)


@dataclass(frozen=True)
class PolicyConfig:
    """The controller settings the policy reads (the rest are the runner's business)."""

    policy: str = "faillite"
    method: str = "exact"  # re-protection and app additions; recovery programs are always greedy
    progressive: bool = True
    plan_time_limit_s: float = 5.0
    unload_grace_s: float = 1.0
    load_retry_s: float = 1.0  # a refused load waits this long before reconcile retries it
    climb_retry_s: float = 5.0  # a refused climb waits this long


@dataclass
class ControlState:
    families: Mapping[str, Family]
    params: PlannerParams
    config: PolicyConfig = field(default_factory=PolicyConfig)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    apps: dict[str, AppSpec] = field(default_factory=dict)
    plan: Plan = field(default_factory=lambda: Plan(()))
    home_plan: Plan = field(default_factory=lambda: Plan(()))
    serving: dict[str, Serving] = field(default_factory=dict)
    agents: dict[str, AgentView] = field(default_factory=dict)
    loading: dict[str, frozenset[str]] = field(default_factory=dict)
    retry_after: dict[Replica, float] = field(default_factory=dict)
    undesired_since: dict[Replica, float] = field(default_factory=dict)
    programs: dict[str, Program] = field(default_factory=dict)
    pinned: dict[str, frozenset[Replica]] = field(default_factory=dict)
    failed_at: dict[str, tuple[float, str]] = field(default_factory=dict)
    climbing: dict[str, Assignment] = field(default_factory=dict)
    climb_blocked: dict[str, float] = field(default_factory=dict)
    settled: dict[str, Replica] = field(default_factory=dict)
    reprotecting: int = 0
    failback_due: bool = False
    runs: int = 0  # program runs started so far (the next run's id)

    def loaded(self, node: str) -> frozenset[str]:
        agent = self.agents.get(node)
        return frozenset() if agent is None else agent.loaded

    def loading_on(self, node: str) -> frozenset[str]:
        return self.loading.get(node, frozenset())


def live_nodes(state: ControlState) -> list[str]:
    return [n.id for n in state.nodes.values() if n.state in LIVE_STATES]


def planning_nodes(state: ControlState, include_dead: bool = False) -> list[Node]:
    """The planner's nodes in id order: the plan must not depend on which agent registered
    first (the planner breaks ties by node order; the simulator must reach the same plan)."""
    return [
        Node(n.id, n.memory_bytes, cores=n.cores, domain=n.domain)
        for n in sorted(state.nodes.values(), key=lambda n: n.id)
        if include_dead or n.state in LIVE_STATES
    ]


def observed(state: ControlState, now: float) -> Observed:
    backing_off: dict[str, set[str]] = {}  # refused loads wait: reconcile sees them as loading
    for r, t in state.retry_after.items():
        if t > now:
            backing_off.setdefault(r.node, set()).add(r.variant)
    views = {}
    for node_id, record in state.nodes.items():
        agent = state.agents.get(node_id)
        connected = agent is not None and agent.connected
        views[node_id] = NodeView(
            state=record.state,
            loaded=agent.loaded if agent is not None and connected else frozenset(),
            loading=state.loading_on(node_id) | backing_off.get(node_id, frozenset()),
            connected=connected,
        )
    return Observed(views, dict(state.undesired_since))


def desired(state: ControlState) -> Desired:
    return Desired(
        plan=state.plan,
        serving={app: s.replica for app, s in state.serving.items()},
        states={app: s.state for app, s in state.serving.items()},
        busy=frozenset(state.programs),
        pinned=frozenset(r for rs in state.pinned.values() for r in rs),
        home={a.app: Replica(a.primary_node, a.primary_variant) for a in state.home_plan},
    )
