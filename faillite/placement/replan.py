"""Re-planning after failures: recovery actions now, then new backups, moving as little as possible.

``replan(instance, plan, failed)`` returns ordered actions:

1. every app with a warm backup on a surviving node switches to it (most critical first); the
   others with a shared warm fallback on a survivor (policy faillite-shared) switch to that;
2. first service for the other failed apps, most critical first: with progressive failover, load
   the *stepping stone* (the fastest-loading variant of the family that meets the SLO on the
   backup node and fits in memory beyond the reservations) and switch to it; otherwise load the
   planned cold backup and switch (no stone when a shared fallback answers at least as
   accurately already). Apps without a usable backup are reloaded wherever they fit
   (the ``none`` policy reloads the primary variant; the others the best variant that fits);
3. upgrades: load the planned variant, switch to it, unload the stepping stone;
4. re-protection: apps that lost their backup (or now run on it) get new backups; backups on
   surviving nodes are kept. When that is infeasible, the kept backups that no longer fit
   (a survivor now running failed-over primaries) move and the others stay; only when that is
   infeasible too are all backups free to move (a full re-plan), and only as a last resort are
   some apps left unprotected.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from enum import StrEnum

from faillite.placement.api import make_plan
from faillite.placement.model import App, Instance, Mode, Plan, PlanningError, PlanResult, Status, Variant
from faillite.placement.policies import Policy

__all__ = ["SHARED_REASON", "Action", "ActionKind", "ReplanResult", "replan"]

#: The reason of a switch to a shared warm fallback (done at detection time, like a warm switch).
SHARED_REASON = "shared warm fallback"


class ActionKind(StrEnum):
    SWITCH = "switch"  # route the app's traffic to (node, variant), already loaded
    LOAD = "load"
    UNLOAD = "unload"
    LOST = "lost"  # the app cannot be served anywhere


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    app: str
    node: str | None
    variant: str | None
    reason: str


@dataclass(frozen=True)
class ReplanResult:
    actions: tuple[Action, ...]
    instance: Instance  # the survivors, with each app's primary where it now runs
    protection: PlanResult  # the new backups for that instance
    lost: tuple[str, ...]
    moved: tuple[str, ...]  # apps whose surviving backup had to move


@dataclass
class _Target:
    app: App
    node: str
    variant: Variant
    stone: Variant | None = None
    why: str = ""


def replan(
    inst: Instance,
    plan: Plan,
    failed: Collection[str],
    *,
    policy: Policy | str = Policy.FAILLITE,
    method: str = "greedy",
    progressive: bool = True,
    time_limit_s: float = 5.0,
    seed: int = 0,
    protect: bool = True,
) -> ReplanResult:
    """``protect=False`` returns only the recovery actions (fast: no planning of new backups),
    for a caller that starts recovering at once and re-protects with a second call."""
    failed = set(failed)
    for f in failed:
        inst.node(f)
    nodes = {n.id: n for n in inst.nodes if n.id not in failed}
    by_app = plan.by_app()
    loaded = dict.fromkeys(nodes, 0)  # memory in use on survivors right now
    for asg in plan:
        app = inst.app(asg.app)
        if asg.primary_node in nodes:
            loaded[asg.primary_node] += inst.variant(app.family, asg.primary_variant).memory_bytes
        b = asg.backup
        if b is not None and b.mode is Mode.WARM and b.node in nodes:
            loaded[b.node] += inst.variant(app.family, b.variant).memory_bytes
    shared = {}  # app -> its shared warm fallback on a survivor (each counted once per node)
    for sf in {(sf.node, sf.family, sf.variant): sf for sf in plan.shared}.values():
        if sf.node in nodes:
            loaded[sf.node] += inst.variant(sf.family, sf.variant).memory_bytes
            shared.update(dict.fromkeys(sf.apps, sf))
    order = sorted(
        (inst.app(a.app) for a in plan if a.primary_node in failed),
        key=lambda a: (not a.critical, -a.weight, a.name),
    )
    actions: list[Action] = []
    targets: list[_Target] = []
    serving: dict[str, tuple[str, str]] = {
        a.app: (a.primary_node, a.primary_variant) for a in plan if a.primary_node not in failed
    }
    reserved = dict.fromkeys(nodes, 0)
    fallback: list[App] = []
    for app in order:
        b = by_app[app.name].backup
        if b is not None and b.node in nodes and b.mode is Mode.WARM:
            actions.append(Action(ActionKind.SWITCH, app.name, b.node, b.variant, "warm backup"))
            serving[app.name] = (b.node, b.variant)
            continue
        sf = shared.get(app.name)
        if sf is not None:  # answers at once, while the app's own backup loads
            actions.append(Action(ActionKind.SWITCH, app.name, sf.node, sf.variant, SHARED_REASON))
        if b is not None and b.node in nodes:
            v = inst.variant(app.family, b.variant)
            if loaded[b.node] + reserved[b.node] + v.memory_bytes <= nodes[b.node].memory_bytes:
                reserved[b.node] += v.memory_bytes
                targets.append(_Target(app, b.node, v, why="planned cold backup"))
            else:
                fallback.append(app)
        else:
            fallback.append(app)
    lost: list[str] = []
    for app in fallback:  # no usable backup: reload wherever it fits
        t = _fallback(inst, app, by_app[app.name].primary_variant, nodes, loaded, reserved, Policy(policy))
        if t is None:
            lost.append(app.name)
            actions.append(
                Action(ActionKind.LOST, app.name, None, None, "no surviving node can hold any variant")
            )
        else:
            reserved[t.node] += t.variant.memory_bytes
            targets.append(t)
    targets.sort(key=lambda t: (not t.app.critical, -t.app.weight, t.app.name))
    if progressive:
        for t in targets:
            t.stone = _stepping_stone(inst, t, nodes, loaded, reserved)
            sf = shared.get(t.app.name)
            if (
                t.stone is not None
                and sf is not None
                and inst.variant(sf.family, sf.variant).accuracy >= t.stone.accuracy
            ):
                t.stone = None  # the shared fallback already answers, at least as accurately
            if t.stone is not None:
                loaded[t.node] += t.stone.memory_bytes
    for t in targets:  # first service
        first = t.stone or t.variant
        why = "stepping stone (progressive failover)" if t.stone else t.why
        actions.append(Action(ActionKind.LOAD, t.app.name, t.node, first.name, why))
        actions.append(Action(ActionKind.SWITCH, t.app.name, t.node, first.name, why))
        serving[t.app.name] = (t.node, t.variant.name)
    for t in targets:  # upgrades
        if t.stone is None:
            continue
        actions.append(Action(ActionKind.LOAD, t.app.name, t.node, t.variant.name, t.why))
        actions.append(Action(ActionKind.SWITCH, t.app.name, t.node, t.variant.name, t.why))
        actions.append(Action(ActionKind.UNLOAD, t.app.name, t.node, t.stone.name, "stepping stone done"))
    if not protect:
        unplanned = PlanResult(Status.UNKNOWN, method, str(policy), reasons=("re-protection not computed",))
        return ReplanResult(tuple(actions), _survivors(inst, failed, serving), unplanned, tuple(lost), ())
    return _reprotect(inst, plan, failed, serving, actions, tuple(lost), policy, method, time_limit_s, seed)


def _protected(result: PlanResult) -> int:
    return 0 if result.plan is None else sum(a.backup is not None for a in result.plan)


def _fits_free(
    inst: Instance, app: App, v: Variant, node_id: str, nodes: dict, loaded: dict, reserved: dict
) -> bool:
    node = nodes[node_id]
    return (
        v.latency_on(node) <= app.slo_ms
        and loaded[node_id] + reserved[node_id] + v.memory_bytes <= node.memory_bytes
    )


def _fallback(
    inst: Instance, app: App, primary: str, nodes: dict, loaded: dict, reserved: dict, policy: Policy
) -> _Target | None:
    pv = inst.variant(app.family, primary)
    if policy is Policy.NONE:
        variants = [pv]
    else:
        variants = sorted(
            (
                v
                for v in inst.family(app.family).variants
                if v.memory_bytes <= pv.memory_bytes and v.accuracy <= pv.accuracy
            ),
            key=lambda v: (-v.accuracy, v.memory_bytes, v.name),
        )
    for v in variants:
        ok = [n for n in nodes if _fits_free(inst, app, v, n, nodes, loaded, reserved)]
        if ok:
            best = max(ok, key=lambda n: (nodes[n].memory_bytes - loaded[n] - reserved[n], n))
            return _Target(app, best, v, why="reload where it fits (no usable backup)")
    return None


def _stepping_stone(inst: Instance, t: _Target, nodes: dict, loaded: dict, reserved: dict) -> Variant | None:
    node = nodes[t.node]

    def first_ms(v: Variant) -> float:
        return v.load_ms + v.first_infer_ms / node.speed

    quick = [
        v
        for v in inst.family(t.app.family).variants
        if first_ms(v) < first_ms(t.variant)
        and v.latency_on(node) <= t.app.slo_ms
        and loaded[t.node] + reserved[t.node] + v.memory_bytes <= node.memory_bytes
    ]
    return min(quick, key=lambda v: (first_ms(v), -v.accuracy, v.name), default=None)


def _survivors(inst: Instance, failed: set[str], serving: dict[str, tuple[str, str]]) -> Instance:
    """The surviving nodes, with each app's primary where it now runs."""
    apps = tuple(
        a
        if (a.primary_node, a.primary_variant) == serving[a.name]
        else replace(a, primary_node=serving[a.name][0], primary_variant=serving[a.name][1])
        for a in inst.apps
        if a.name in serving
    )
    survivors = tuple(n for n in inst.nodes if n.id not in failed)
    if not survivors:
        raise PlanningError("every node failed")
    return Instance(survivors, inst.families, apps, inst.params)


def _reprotect(
    inst: Instance,
    plan: Plan,
    failed: set[str],
    serving: dict[str, tuple[str, str]],
    actions: list[Action],
    lost: tuple[str, ...],
    policy: Policy | str,
    method: str,
    time_limit_s: float,
    seed: int,
) -> ReplanResult:
    new_inst = _survivors(inst, failed, serving)
    keep = {
        a.app: a.backup
        for a in plan
        if a.backup is not None and a.primary_node not in failed and a.backup.node not in failed
    }
    opts = {
        "method": method,
        "policy": policy,
        "time_limit_s": time_limit_s,
        "seed": seed,
        "keep_shared": tuple(sf for sf in plan.shared if sf.node not in failed),
    }
    result = make_plan(new_inst, keep=keep, reasons=False, **opts)
    if result.plan is None:  # keeping every backup leaves some app unprotected
        kept = make_plan(new_inst, keep=keep, best_effort=True, **opts)
        # Kept backups that no longer fit (their node now runs failed-over primaries) move,
        # the others stay: after a domain failure one survivor may hold many of its apps.
        partial = None
        if kept.plan is not None:
            stays = {a.app: a.backup for a in kept.plan if a.app in keep and a.backup == keep[a.app]}
            if len(stays) < len(keep):
                partial = make_plan(new_inst, keep=stays, reasons=False, **opts)
        if partial is not None and partial.plan is not None:
            result = partial
        else:  # last resort: every backup may move
            moved_all = make_plan(new_inst, **opts)
            result = (
                moved_all if moved_all.plan is not None and _protected(moved_all) > _protected(kept) else kept
            )
    moved: list[str] = []
    if result.plan is not None:
        for asg in result.plan:
            old = keep.get(asg.app)
            new = asg.backup
            if old is not None and new != old:
                moved.append(asg.app)
                if old.mode is Mode.WARM:
                    actions.append(Action(ActionKind.UNLOAD, asg.app, old.node, old.variant, "backup moved"))
            if new is not None and new.mode is Mode.WARM and new != old:
                actions.append(
                    Action(ActionKind.LOAD, asg.app, new.node, new.variant, "re-protect: warm backup")
                )
    return ReplanResult(tuple(actions), new_inst, result, lost, tuple(moved))
