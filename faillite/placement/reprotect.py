"""Incremental re-protection: new backups for the apps that need one, every other backup kept.

After a node failure only a few apps need a backup: those whose primary failed over and those
whose backup was on the dead node. A full planner pass over 10,000 apps to place twenty backups
costs seconds; here the planner sees only the needy apps, on nodes whose budgets are what the
kept apps leave in the *worst* failure scenario (their primaries, warm backups and largest cold
reservation; their primaries' compute and largest compute after a failure). That is
conservative: a plan found this way is valid together with the kept backups in every scenario.
It is adopted only when it protects every needy app; otherwise (``None``) the caller runs the
full re-plan, so protection is never worse than that path's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from faillite.placement.api import make_plan
from faillite.placement.fallbacks import room_of
from faillite.placement.feasibility import plan_score
from faillite.placement.model import Assignment, Backup, Instance, Plan, PlanResult, Status
from faillite.placement.policies import Policy, rules_for
from faillite.placement.scenarios import failure_scenarios

__all__ = ["reprotect_needy"]


def reprotect_needy(
    inst: Instance,
    keep: Mapping[str, Backup],
    *,
    policy: Policy | str,
    method: str,
    time_limit_s: float,
    seed: int,
) -> PlanResult | None:
    """A plan of ``inst`` (every primary pinned) keeping every backup of ``keep`` and giving every
    other app one, or None when this way finds none (or does not apply: shared fallbacks)."""
    rules = rules_for(policy)
    if not rules.backups or rules.shared or any(a.primary_node is None for a in inst.apps):
        return None
    needy = [a for a in inst.apps if a.name not in keep]
    if not needy:
        return None  # nothing to place: the caller's first plan is as cheap
    kept = Plan(
        tuple(
            _assignment(inst, a.name, keep[a.name])
            for a in inst.apps
            if a.name in keep  # the others' primaries and backups: fixed room
        )
    )
    scenarios: Sequence[frozenset[str]] = [
        s.failed for s in failure_scenarios(inst.nodes, use_domains=inst.params.use_domains)
    ]
    room = room_of(inst, kept, scenarios)
    nodes = []
    for n in inst.nodes:
        mem = n.memory_bytes - room.base[n.id] - room.peak[n.id]
        mc = n.capacity_mc - room.mc[n.id] - max(room.after[n.id].values(), default=0)
        if mem < 0 or mc < 0:
            return None  # the kept backups alone overflow a node: some must move
        nodes.append(dataclasses.replace(n, memory_bytes=mem, cores=mc / 1000))
    sub = dataclasses.replace(inst, nodes=tuple(nodes), apps=tuple(needy))
    result = make_plan(sub, method=method, policy=policy, time_limit_s=time_limit_s, seed=seed, reasons=False)
    if result.plan is None or any(a.backup is None for a in result.plan):
        return None
    placed = {**kept.by_app(), **result.plan.by_app()}
    plan = Plan(tuple(placed[a.name] for a in inst.apps))
    return PlanResult(Status.FEASIBLE, result.method, str(Policy(policy)), plan, plan_score(inst, plan))


def _assignment(inst: Instance, app: str, backup: Backup) -> Assignment:
    a = inst.app(app)
    return Assignment(app, a.primary_node or "", a.primary_variant, backup)
