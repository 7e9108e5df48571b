"""Which apps and nodes a reconcile pass must look at: the rest would give no action.

``decide`` is local: an app's loads and switches depend on its own plan entry, serving and
program and on the views of the nodes its replicas are on; a node's unloads on what it holds
and on the apps with replicas there. So a pass that gave an app (or a node) no action gives it
none again until an effect touches it, or a node's clock runs (a load in flight, a refused
load backing off, an unneeded replica in its grace period). At 10,000 apps a full pass costs
~0.5 s; a failure wakes the loop a hundred times. So the simulator runs ``policy.reconcile``
on a *view* of the state: the apps touched since their last quiet pass, every app with a
replica on a node touched since its last quiet pass, the nodes touched as they are, and the
other nodes these apps use shown holding only what they need there (so that nothing looks
unneeded on them); nodes they do not use are left out.
The effects are applied to the whole state. The decisions are ``policy.reconcile``'s own;
this module only chooses what it is shown, and the unit tests check that a full pass and a
focused one give the same effects.
"""

from __future__ import annotations

from collections.abc import Iterable

from faillite.controller.decide import Load, SetServing, Unload
from faillite.controller.effects import (
    CancelProgram,
    Effect,
    EndProgram,
    LoadDone,
    PutApp,
    PutNode,
    RemoveApp,
    SetAgent,
    SetNodeState,
    SetPlan,
    StartProgram,
    StartRecovery,
    UpdateProgram,
)
from faillite.controller.model import AgentView, ControlState
from faillite.controller.states import NodeState
from faillite.placement import Assignment, Mode, Plan

__all__ = ["Focus"]


def _nodes_of(asg: Assignment | None) -> set[str]:
    """Where ``asg`` wants something loaded: its primary and a warm backup (a cold backup only
    reserves memory: ``decide`` does nothing for it)."""
    if asg is None:
        return set()
    b = asg.backup
    return {asg.primary_node} | ({b.node} if b is not None and b.mode is Mode.WARM else set())


def _wants(asg: Assignment | None) -> tuple[object, ...] | None:
    """What of ``asg`` a reconcile pass reads."""
    if asg is None:
        return None
    b = asg.backup
    warm = (b.node, b.variant) if b is not None and b.mode is Mode.WARM else None
    return (asg.primary_node, asg.primary_variant, warm)


class Focus:
    def __init__(self, state: ControlState) -> None:
        self.state = state
        self.apps: set[str] = set(state.apps)
        self.nodes: set[str] = set(state.nodes)
        self._plan: Plan | None = None
        self._by_app: dict[str, Assignment] = {}
        self._pos: dict[str, int] = {}
        self._on_node: dict[str, set[str]] = {}  # node -> apps with a planned replica there
        self._serving_on: dict[str, set[str]] = {}  # node -> apps served from there
        self._home: Plan | None = None
        self._home_by_app: dict[str, Assignment] = {}
        self.reset()

    def reset(self) -> None:
        """Everything in focus, indexes rebuilt (after the state was set up directly)."""
        self.apps, self.nodes = set(self.state.apps), set(self.state.nodes)
        self._plan = None
        self._index()
        self._serving_on = {}
        for app in self.state.serving:
            node = self._serving_node(app)
            if node is not None:
                self._serving_on.setdefault(node, set()).add(app)

    # bookkeeping
    def _index(self) -> None:
        plan = self.state.plan
        if plan is self._plan:
            return
        old = self._by_app
        new = {a.app: a for a in plan}
        if self._plan is not None:
            for app in old.keys() | new.keys():
                if _wants(old.get(app)) != _wants(new.get(app)):
                    self.apps.add(app)
                    self.nodes |= _nodes_of(old.get(app)) | _nodes_of(new.get(app))
            before = {(s.node, s.variant, s.apps) for s in self._plan.shared}
            after = {(s.node, s.variant, s.apps) for s in plan.shared}
            self.nodes |= {n for n, _, _ in before ^ after}
        self._plan, self._by_app = plan, new
        self._pos = {a.app: i for i, a in enumerate(plan.assignments)}
        on_node: dict[str, set[str]] = {}
        for a in plan:
            for n in _nodes_of(a):
                on_node.setdefault(n, set()).add(a.app)
        self._on_node = on_node

    def _serving_node(self, app: str) -> str | None:
        s = self.state.serving.get(app)
        return None if s is None or s.replica is None else s.replica.node

    def _pinned_nodes(self, app: str) -> set[str]:
        return {r.node for r in self.state.pinned.get(app, ())}

    def before(self, e: Effect) -> None:
        """Called before ``e`` is applied: what it touches, as it was."""
        for app in _apps_of(e):
            self.apps.add(app)
            self.nodes |= self._pinned_nodes(app)
            node = self._serving_node(app)
            if node is not None:
                self.nodes.add(node)
                self._serving_on.get(node, set()).discard(app)
        self.nodes |= _nodes_touched(e)

    def after(self, e: Effect) -> None:
        """Called after ``e`` is applied: what it touches, as it is now."""
        if isinstance(e, SetPlan):
            self._index()
        for app in _apps_of(e):
            self.nodes |= self._pinned_nodes(app)
            node = self._serving_node(app)
            if node is not None:
                self.nodes.add(node)
                self._serving_on.setdefault(node, set()).add(app)

    # the view
    def view(self) -> ControlState:
        """The state a reconcile pass needs to see (see the module doc)."""
        self._index()
        st = self.state
        apps = set(self.apps) | set(st.programs)
        for n in self.nodes:
            apps |= self._on_node.get(n, set()) | self._serving_on.get(n, set())
        order = sorted((a for a in apps if a in self._pos), key=self._pos.__getitem__)
        plan = Plan(tuple(self._by_app[a] for a in order), st.plan.shared)
        if st.home_plan is not self._home:
            self._home, self._home_by_app = st.home_plan, {a.app: a for a in st.home_plan}
        home = Plan(tuple(self._home_by_app[a] for a in order if a in self._home_by_app))
        needed: dict[str, set[str]] = {}
        for a in order:
            asg = self._by_app[a]
            needed.setdefault(asg.primary_node, set()).add(asg.primary_variant)
            if asg.backup is not None and asg.backup.mode is Mode.WARM:
                needed.setdefault(asg.backup.node, set()).add(asg.backup.variant)
            s = st.serving.get(a)
            if s is not None and s.replica is not None:
                needed.setdefault(s.replica.node, set()).add(s.replica.variant)
            for r in st.pinned.get(a, ()):
                needed.setdefault(r.node, set()).add(r.variant)
        for sf in st.plan.shared:
            needed.setdefault(sf.node, set()).add(sf.variant)
        agents: dict[str, AgentView] = {}
        for node, agent in st.agents.items():
            if node in self.nodes:
                agents[node] = agent
            elif node in needed:
                agents[node] = AgentView(agent.loaded & needed[node], agent.used_bytes, agent.connected)
        shown = needed.keys() | self.nodes  # other nodes hold nothing these apps want
        return ControlState(
            families=st.families,
            params=st.params,
            config=st.config,
            nodes={n: r for n, r in st.nodes.items() if n in shown},
            apps=st.apps,
            plan=plan,
            home_plan=home,
            serving={a: st.serving[a] for a in order if a in st.serving},
            agents=agents,
            loading=st.loading,
            retry_after=st.retry_after,
            undesired_since=st.undesired_since,
            programs={a: p for a, p in st.programs.items() if a in apps},
            pinned={a: p for a, p in st.pinned.items() if a in apps},
            failed_at=st.failed_at,
            settled=st.settled,
            reprotecting=st.reprotecting,
            failback_due=st.failback_due,
        )

    def begin(self) -> None:
        """A pass's effects are about to be carried out: what they touch is marked afresh."""
        self.apps, self.nodes = set(), set()

    def passed(self, effects: Iterable[Effect], now: float) -> None:
        """A pass gave ``effects`` (carried out since ``begin``): what acted or what they touched
        stays in focus, and so do the nodes whose clock runs; the quiet rest leaves it."""
        st = self.state
        for e in effects:
            if isinstance(e, Load | SetServing):
                self.apps.add(e.app)
            if isinstance(e, Load | Unload):
                self.nodes.add(e.replica.node)
        self.apps |= set(st.programs)
        self.nodes |= {r.node for r in st.undesired_since}
        self.nodes |= {r.node for r, t in st.retry_after.items() if t > now}
        self.nodes |= {n for n, v in st.loading.items() if v}
        self.nodes |= {n for n, rec in st.nodes.items() if rec.state is NodeState.REJOINING}


def _apps_of(e: Effect) -> tuple[str, ...]:
    if isinstance(e, SetServing | Load | StartProgram | EndProgram | CancelProgram | RemoveApp):
        return (e.app,)
    if isinstance(e, UpdateProgram):
        return (e.program.app,)
    if isinstance(e, StartRecovery):
        return e.cold
    if isinstance(e, PutApp):
        return (e.spec.name,)
    return ()


def _nodes_touched(e: Effect) -> set[str]:
    if isinstance(e, Load | Unload | LoadDone):
        return {e.replica.node}
    if isinstance(e, SetAgent | SetNodeState):
        return {e.node}
    if isinstance(e, PutNode):
        return {e.record.id}
    return set()
