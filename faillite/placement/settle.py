"""Settling after a failover: climb failed-over apps to the most accurate variant that fits
once the cluster is protected again. Pure: no I/O, no clocks.

After a failover an app answers from its (smaller) backup variant. The memory the failure
left is shared between two wants: better variants for the apps that failed over, and backups
that protect every app against the *next* failure. Settling never trades protection for
accuracy: an app climbs only when a plan exists, with the climbed variant, in which every app
that is protected now (an own backup, or a shared warm fallback) is still protected (other
apps' cold backups may move or shrink: a cold backup is only a reservation, moving it costs
nothing; warm backups stay where they are loaded).

Apps are taken in order of what they stand to gain (weight x accuracy gap to their home
variant), each to its most accurate variant that fits, up to its home variant. The climbed
variant may land on any live node; the node the app runs on now still holds the old variant
until the switch, so its budget is counted without that memory (the load must fit *beside*
the variant it replaces).

Fast path: a climb *in place* (same node, every backup and shared fallback where it is) is
checked against the plan's per-node, per-scenario bookkeeping (``fallbacks.Room``) in
O(scenarios of the node), without a planner call; it changes only the app's primary, so it
cannot unprotect anyone. Only when no variant climbs in place is the greedy planner asked
(a full pass over every app, seconds at 10,000 apps), and for at most ``planner_apps`` apps per
settle call: beyond that an app that cannot climb in place settles where it is (at scale,
``default_planner_apps``, settling is in place only; a later failover asks again).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from faillite.placement.api import make_plan
from faillite.placement.fallbacks import Room, room_of
from faillite.placement.model import App, Assignment, Backup, Instance, Mode, Plan, Variant
from faillite.placement.policies import Policy, rules_for
from faillite.placement.scenarios import failure_scenarios

__all__ = ["Climb", "SettleResult", "settle"]


@dataclass(frozen=True)
class Climb:
    app: str
    from_node: str
    from_variant: str
    node: str
    variant: str


@dataclass(frozen=True)
class SettleResult:
    plan: Plan  # the plan to adopt (the input plan when nothing climbs)
    climbs: tuple[Climb, ...]
    # Apps asked about that cannot climb now (an app that climbs is settled once a later call,
    # with the climb done, finds nothing better).
    settled: tuple[str, ...]


def settle(
    inst: Instance,
    plan: Plan,
    home: Mapping[str, str],
    apps: Iterable[str],
    *,
    policy: Policy | str = Policy.FAILLITE,
    planner_apps: int | None = None,
) -> SettleResult:
    """Climb each of ``apps`` toward its ``home`` variant (app -> variant name) as far as the
    instance allows without leaving a protected app unprotected.

    ``inst`` pins every app's primary (node and variant) where ``plan`` has it; its nodes are the
    live ones. Apps of ``apps`` absent from the instance or already home are settled as they are.
    ``planner_apps`` caps the apps that may ask the planner (None: ``default_planner_apps``).
    """
    if planner_apps is None:
        planner_apps = default_planner_apps(len(inst.apps))
    current = {a.name: a for a in inst.apps}
    protected = _protected(plan)
    climbs: list[Climb] = []
    holding: dict[str, int] = {}  # node -> old variants of apps climbed in this pass
    settled: list[str] = []
    best = plan
    order = sorted(
        (a for a in set(apps) if a in current and a in home),
        key=lambda a: (-_gain(inst, current[a], home[a]), a),
    )
    settled.extend(sorted(a for a in set(apps) if a not in order))
    primaries = _Primaries(inst) if order else None
    fast = _InPlace.of(inst, plan, policy) if order else None
    asking = 0  # apps that asked the planner
    for name in order:
        app = current[name]
        options = _better(inst, app, home[name])
        found = None
        in_place = False
        may_ask, asked_now = asking < planner_apps, False
        for v in options:
            if fast is not None and fast.fits(app, v, holding):
                found, in_place = (v, fast.climb(best, app, v)), True
                break
            assert primaries is not None
            if not primaries.may_place(app, v, holding):
                continue  # the planner would find no room for the climbed primary (saves its call)
            if not may_ask:
                continue  # a less accurate variant may still climb in place
            if not asked_now:
                asked_now, asking = True, asking + 1
            trial = _with_climb(inst, current, app, v, holding)
            # First with every backup where it is (cheapest to carry out), then letting cold
            # reservations move or shrink around the warm backups.
            for keep in (_backups(best), _backups(best, Mode.WARM)):
                result = make_plan(
                    trial,
                    method="greedy",
                    policy=policy,
                    best_effort=True,
                    keep=keep,
                    keep_shared=best.shared,  # shared fallbacks stay loaded where they are
                )
                if result.plan is not None and protected <= _protected(result.plan):
                    found = (v, result.plan)  # never trade protection for accuracy
                    break
            if found is not None:
                break
        if found is None:
            settled.append(name)
            continue
        v, new_plan = found
        asg = new_plan.by_app()[name]
        climbs.append(Climb(name, app.primary_node or "", app.primary_variant, asg.primary_node, v.name))
        current[name] = dataclasses.replace(app, primary_node=asg.primary_node, primary_variant=v.name)
        assert primaries is not None
        primaries.move(app, current[name])
        inst = dataclasses.replace(inst, apps=tuple(current[a.name] for a in inst.apps))
        if in_place and fast is not None:
            fast.after(app, current[name])
        else:  # the planner may have moved cold reservations: recount
            fast = _InPlace.of(inst, new_plan, policy)
        # its old variant stays loaded until its switch: later climbs of this pass load beside it
        old = inst.family(app.family).variant(app.primary_variant)
        holding[app.primary_node or ""] = holding.get(app.primary_node or "", 0) + old.memory_bytes
        best = new_plan
    return SettleResult(best, tuple(climbs), tuple(sorted(settled)))


def default_planner_apps(n_apps: int) -> int:
    """Apps of one settle call that may ask the planner: all on small clusters; none at scale,
    where each call is a greedy pass over thousands of apps (seconds) and the climb in place
    already finds what fits beside the app."""
    return n_apps if n_apps <= 2_000 else 0


def _gain(inst: Instance, app: App, home: str) -> float:
    fam = inst.family(app.family)
    return app.weight * (fam.variant(home).accuracy - fam.variant(app.primary_variant).accuracy)


def _better(inst: Instance, app: App, home: str) -> list[Variant]:
    """Variants more accurate than the current one, up to home, most accurate first."""
    fam = inst.family(app.family)
    now, ceiling = fam.variant(app.primary_variant), fam.variant(home)
    better = [v for v in fam.variants if now.accuracy < v.accuracy <= ceiling.accuracy]
    # Within SLO only: the planner rejects a primary over its SLO, and so would the app.
    better = [v for v in better if v.latency_ms <= app.slo_ms or v.name == home]
    return sorted(better, key=lambda v: (-v.accuracy, v.memory_bytes, v.name))


def _with_climb(
    inst: Instance, current: Mapping[str, App], app: App, v: Variant, holding: Mapping[str, int]
) -> Instance:
    """The instance with ``app`` on variant ``v``, placed by the planner, while the node it runs
    on now still holds the old variant (and each node the old variants of this pass's earlier
    climbs, ``holding``: every climb loads before its switch)."""
    old = inst.family(app.family).variant(app.primary_variant)
    moved = dataclasses.replace(app, primary_variant=v.name, primary_node=None)
    held = dict(holding)
    held[app.primary_node or ""] = held.get(app.primary_node or "", 0) + old.memory_bytes
    nodes = tuple(
        dataclasses.replace(n, memory_bytes=n.memory_bytes - held[n.id]) if n.id in held else n
        for n in inst.nodes
    )
    apps = tuple(moved if a.name == app.name else current[a.name] for a in inst.apps)
    return dataclasses.replace(inst, nodes=nodes, apps=apps)


def _protected(plan: Plan) -> set[str]:
    """Apps a next failure would not take down: an own backup, or a shared warm fallback."""
    covered = {app for s in plan.shared for app in s.apps}
    return {a.app for a in plan if a.backup is not None or a.app in covered}


def _backups(plan: Plan, mode: Mode | None = None) -> dict[str, Backup]:
    return {a.app: a.backup for a in plan if a.backup is not None and mode in (None, a.backup.mode)}


class _Primaries:
    """Memory and compute of the pinned primaries per node, to tell at once when the planner's
    own static check (``explain.static_reasons``, primaries part) would refuse a climb's trial
    instance; ``make_plan`` would then return no plan, so the call is skipped."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.nodes = {n.id: n for n in inst.nodes}
        self.mem: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self.mc: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self.slo_missed = False
        for a in inst.apps:
            if a.primary_node is not None:
                self._count(a, 1)
                v = inst.variant(a.family, a.primary_variant)
                self.slo_missed |= v.latency_on(self.nodes[a.primary_node]) > a.slo_ms

    def _count(self, a: App, sign: int) -> None:
        if a.primary_node is None:
            return
        node = self.nodes[a.primary_node]
        v = self.inst.variant(a.family, a.primary_variant)
        self.mem[node.id] += sign * v.memory_bytes
        self.mc[node.id] += sign * v.demand_mc(a.request_rate, node)

    def move(self, old: App, new: App) -> None:
        self._count(old, -1)
        self._count(new, 1)

    def may_place(self, app: App, v: Variant, holding: Mapping[str, int]) -> bool:
        """False when the trial of ``app`` on ``v`` (``_with_climb``) has a static reason."""
        if self.slo_missed:
            return False
        old = self.inst.variant(app.family, app.primary_variant)
        held = dict(holding)
        held[app.primary_node or ""] = held.get(app.primary_node or "", 0) + old.memory_bytes
        self._count(app, -1)  # unpinned in the trial
        try:
            for node_id, n in self.nodes.items():
                budget = n.memory_bytes - held.get(node_id, 0)
                over = self.mem[node_id] > budget or self.mc[node_id] > n.capacity_mc
                if over and (self.mem[node_id] or self.mc[node_id]):  # nodes with primaries only
                    return False
            return any(
                v.latency_on(n) <= app.slo_ms
                and self.mem[node_id] + v.memory_bytes <= n.memory_bytes - held.get(node_id, 0)
                and self.mc[node_id] + v.demand_mc(app.request_rate, n) <= n.capacity_mc
                for node_id, n in self.nodes.items()
            )
        finally:
            self._count(app, 1)


class _InPlace:
    """The plan's room per node and failure scenario, to climb an app on the node it runs on
    with every backup and shared fallback kept: only that node's memory and compute change."""

    def __init__(self, inst: Instance, room: Room, backups: Mapping[str, Backup]) -> None:
        self.inst, self.room, self.backups = inst, room, backups

    @staticmethod
    def of(inst: Instance, plan: Plan, policy: Policy | str) -> _InPlace | None:
        """None where the fast path does not apply: the policy's backup is the primary's own
        variant (a climb changes it), or the plan and instance disagree."""
        if rules_for(policy, best_effort=True).same_variant:
            return None
        by_app = plan.by_app()
        if set(by_app) != {a.name for a in inst.apps} or any(
            a.primary_node != by_app[a.name].primary_node
            or a.primary_variant != by_app[a.name].primary_variant
            for a in inst.apps
        ):
            return None
        scenarios = [s.failed for s in failure_scenarios(inst.nodes, use_domains=inst.params.use_domains)]
        room = room_of(inst, plan, scenarios)
        for sf in plan.shared:
            room.take(
                inst.node(sf.node),
                inst.variant(sf.family, sf.variant),
                [inst.app(a) for a in sf.apps],
                scenarios,
            )
        return _InPlace(inst, room, _backups(plan))

    def fits(self, app: App, v: Variant, holding: Mapping[str, int]) -> bool:
        """``app`` on ``v`` where it runs now, its old variant still loaded until the switch."""
        if app.primary_node is None:
            return False
        n = self.inst.node(app.primary_node)
        old = self.inst.variant(app.family, app.primary_variant)
        if v.latency_on(n) > app.slo_ms:
            return False
        b = self.backups.get(app.name)
        if b is not None:
            bv = self.inst.variant(app.family, b.variant)
            if bv.memory_bytes > v.memory_bytes or bv.accuracy > v.accuracy:
                return False
        room = self.room
        # base counts the old variant, which stays held: the new one loads beside it
        mem = room.base[n.id] + room.peak[n.id] + v.memory_bytes + holding.get(n.id, 0)
        if mem > n.memory_bytes:
            return False
        mc = room.mc[n.id] - old.demand_mc(app.request_rate, n) + v.demand_mc(app.request_rate, n)
        worst = max(room.after[n.id].values(), default=0)
        return mc + worst <= n.capacity_mc

    def climb(self, plan: Plan, app: App, v: Variant) -> Plan:
        assignments = tuple(
            Assignment(a.app, a.primary_node, v.name, a.backup) if a.app == app.name else a for a in plan
        )
        return dataclasses.replace(plan, assignments=assignments)

    def after(self, old: App, new: App) -> None:
        """The bookkeeping once ``old`` climbed in place to ``new``."""
        n = self.inst.node(new.primary_node or "")
        ov = self.inst.variant(old.family, old.primary_variant)
        nv = self.inst.variant(new.family, new.primary_variant)
        self.room.base[n.id] += nv.memory_bytes - ov.memory_bytes
        self.room.mc[n.id] += nv.demand_mc(new.request_rate, n) - ov.demand_mc(old.request_rate, n)
        return self
