"""Shared warm fallbacks: a post-pass over a finished plan (policy ``faillite-shared``).

Apps whose families have the same fallback key (``Family.task``: same task, same input and
output signature) can be answered by any variant of any of those families. One small warm
model on node N then answers for every cold-backed app of that key whose primary is outside
N's failure domain, from the moment its node dies until its own backup has loaded.

Why a post-pass and not a term of the solvers' models: the fallbacks serve only the transient
(their accuracy is never the settled accuracy the objective is about), and they are placed in
memory the plan leaves free in its worst failure scenario, so they cannot make the plan's
backups worse. Accounting, per node N (B: budget, C: compute):

- memory: a fallback is loaded at all times, like a warm backup: primaries + warm backups +
  fallbacks + the cold reservations of any one scenario <= B. Each (node, variant) counts once.
- compute after a failure scenario s: primaries + the backups on N of the apps s fails + the
  fallbacks' demand for the apps s fails <= C (the backups are counted as serving at once,
  which over-counts the transient: cold ones are still loading).

Per key (most apps first), fallbacks are added one at a time: the (node, variant) that covers
the most still-uncovered apps (not in their failure domain, within each one's SLO, and no
larger than each one's own backup: one fallback then costs at most what one warm backup of
the apps it serves would), then the most accurate such variant up to ``accuracy_slack`` (the
smallest variant within that slack of the best is taken: a fallback holds memory for good),
then the node with most memory free.
Kept fallbacks (re-planning) go first when they still fit, so a re-plan moves few models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace

from faillite.placement.fallbacks import next_fallback, node_groups, room_of
from faillite.placement.feasibility import Context, plan_score
from faillite.placement.greedy import polish
from faillite.placement.model import (
    App,
    Backup,
    Instance,
    Mode,
    Node,
    Plan,
    PlanResult,
    SharedFallback,
    Variant,
)
from faillite.placement.policies import PolicyRules
from faillite.placement.scenarios import failure_scenarios, same_domain

__all__ = ["eligible_apps", "place_shared", "shared_first", "uncovered", "with_shared"]


def eligible_apps(inst: Instance, plan: Plan) -> dict[str, list[str]]:
    """Apps a shared fallback would help, by fallback key: those without a warm backup."""
    out: dict[str, list[str]] = defaultdict(list)
    for asg in plan:
        app = inst.app(asg.app)
        key = inst.family(app.family).task
        if key is None or (asg.backup is not None and asg.backup.mode is Mode.WARM):
            continue
        out[key].append(app.name)
    return dict(out)


def place_shared(
    inst: Instance,
    plan: Plan,
    *,
    keep: Sequence[SharedFallback] = (),
    down: Collection[str] = (),
    accuracy_slack: float = 0.01,
    scan: int = 64,
    cap: Mapping[str, int] | None = None,
) -> Plan:
    """``plan`` with shared warm fallbacks (its assignments unchanged). ``down``: nodes that
    may not hold one (dead). Apps no fallback can reach stay without one. ``cap``: the largest
    fallback (bytes) each app may have (default: its own backup's memory, or its primary's)."""
    down = set(down)
    scenarios = [sc.failed for sc in failure_scenarios(inst.nodes, use_domains=inst.params.use_domains)]
    room = room_of(inst, plan, scenarios)
    group = node_groups(inst)
    scenario_group = [group[next(iter(failed))] for failed in scenarios]
    primary = {a.app: a.primary_node for a in plan}
    apps = {a.name: a for a in inst.apps}
    # each app as placed (its primary node given), for the per-scenario compute sums
    placed = {name: _at(apps[name], primary[name]) for name in primary if name in apps}
    families_of: dict[str, list[str]] = defaultdict(list)
    for f in inst.families:
        if f.task is not None:
            families_of[f.task].append(f.name)
    live = [n for n in inst.nodes if n.id not in down]
    node_ids = {n.id for n in inst.nodes}
    use_domains = inst.params.use_domains
    out: list[SharedFallback] = []
    todo_by_key = eligible_apps(inst, plan)

    # A fallback is no larger than any served app's own backup (or primary, without one): it
    # then never costs more memory than the one warm backup it stands in for.
    if cap is None:
        cap = {}
        for asg in plan:
            own = asg.backup.variant if asg.backup is not None else asg.primary_variant
            cap[asg.app] = inst.variant(apps[asg.app].family, own).memory_bytes

    def reach(n: Node, v: Variant, todo: Collection[str]) -> list[App]:
        return sorted(
            (
                placed[a]
                for a in todo
                if not same_domain(inst.node(primary[a]), n, use_domains=use_domains)
                and v.latency_on(n) <= placed[a].slo_ms
                and v.memory_bytes <= cap[a]
            ),
            key=lambda a: a.name,
        )

    for key in sorted(todo_by_key, key=lambda k: (-len(todo_by_key[k]), k)):
        todo = set(todo_by_key[key])
        variants = [(f, v) for f in sorted(families_of[key]) for v in inst.family(f).variants]
        for sf in keep:  # re-planning: keep what is loaded where it still serves and fits
            if sf.node in down or sf.node not in node_ids or sf.family not in families_of[key]:
                continue
            if all(x.name != sf.variant for x in inst.family(sf.family).variants):
                continue
            n, v = inst.node(sf.node), inst.variant(sf.family, sf.variant)
            served = reach(n, v, todo)
            if served and room.fits(n, v, served, scenarios):
                room.take(n, v, served, scenarios)
                out.append(SharedFallback(n.id, sf.family, v.name, tuple(a.name for a in served)))
                todo -= {a.name for a in served}
        while todo:
            # large clusters: only the nodes with most memory free (each pass, as fallbacks fill them)
            pool = live if len(live) <= scan else sorted(live, key=lambda n: (-room.free(n), n.id))[:scan]
            found = next_fallback(
                room, pool, variants, todo, placed, cap, group, scenario_group, accuracy_slack
            )
            if found is None:
                break
            n, fam, v, served = found
            room.take(n, v, served, scenarios)
            out.append(SharedFallback(n.id, fam, v.name, tuple(a.name for a in served)))
            todo -= {a.name for a in served}
    return Plan(plan.assignments, tuple(out))


def _at(app: App, node: str) -> App:
    return app if app.primary_node == node else replace(app, primary_node=node)


def with_shared(
    inst: Instance,
    rules: PolicyRules,
    keep: Mapping[str, Backup] | None,
    result: PlanResult,
    keep_shared: Sequence[SharedFallback] = (),
) -> PlanResult:
    """``result`` with shared warm fallbacks, traded against warm backups for memory.

    A plan that maximises accuracy then minimises recovery time makes every backup warm that
    fits, which leaves no memory for a fallback. So: (1) every warm backup the rules let be
    cold becomes cold (never infeasible: a cold reservation counts in fewer scenarios than a
    warm model), (2) fallbacks are placed, (3) the greedy climb turns backups warm again where
    memory is left beside the fallbacks, (4) apps that got a warm backup leave their fallback's
    list and unused fallbacks go. Backup variants never change in (1), and (3) never lowers an
    app's accuracy, so the plan keeps its weighted accuracy (and its optimality status).
    """
    plan = result.plan
    if plan is None:
        return result
    ctx = Context(inst, rules, keep)
    cooled = _cool(ctx, plan)
    placed = place_shared(inst, cooled, keep=keep_shared)
    if not placed.shared:
        return replace(result, plan=Plan(plan.assignments, ()))
    for sf in {(sf.node, sf.variant): sf for sf in placed.shared}.values():  # reserved for the climb
        n = ctx.node_index[sf.node]
        v = inst.variant(sf.family, sf.variant)
        ctx.fixed_mem[n] += v.memory_bytes
        ctx.fixed_mc[n] += sum(v.demand_mc(inst.app(a).request_rate, ctx.nodes[n]) for a in sf.apps)
    climbed = polish(ctx, Plan(cooled.assignments), passes=2)
    warm = {a.app for a in climbed if a.backup is not None and a.backup.mode is Mode.WARM}
    shared = tuple(
        SharedFallback(sf.node, sf.family, sf.variant, kept)
        for sf in placed.shared
        if (kept := tuple(a for a in sf.apps if a not in warm))
    )
    if not shared:  # every app got a warm backup back: the solver's own plan is as good or better
        return replace(result, plan=Plan(plan.assignments, ()))
    final = Plan(climbed.assignments, shared)
    return replace(result, plan=final, score=plan_score(inst, final), tiebreaks_optimal=False)


def _cool(ctx: Context, plan: Plan) -> Plan:
    """Warm backups made cold wherever the rules allow it (kept backups stay as they are)."""
    out = []
    index = {a.name: k for k, a in enumerate(ctx.apps)}
    for asg in plan:
        b = asg.backup
        i = index[asg.app]
        if b is not None and b.mode is Mode.WARM and asg.app not in ctx.keep:
            app = ctx.apps[i]
            v = ctx.inst.variant(app.family, b.variant)
            if Mode.COLD in ctx.modes_for(i, v, ctx.inst.node(b.node)):
                asg = replace(asg, backup=replace(b, mode=Mode.COLD))
        out.append(asg)
    return Plan(tuple(out))


def uncovered(plan: Plan) -> set[str]:
    """Apps a next failure would take down: no own backup and no shared fallback."""
    covered = {a for sf in plan.shared for a in sf.apps}
    return {a.app for a in plan if a.backup is None and a.app not in covered}


def shared_first(
    inst: Instance,
    plan: Plan,
    solve: Callable[[Instance], Plan | None],
    keep_shared: Sequence[SharedFallback] = (),
) -> Plan | None:
    """Best effort, protection first: shared fallbacks for every app, then own backups in the
    memory left. For re-planning after a failure, when the survivors cannot give every app an
    own backup: one small warm model per node pair protects every app of its key, so own backups
    are then best effort around it (and settling may trade them for accuracy).

    Fallbacks are capped at the smallest variant of each app's family (never more memory than
    the cheapest own backup would take), placed around the primaries alone (``plan``'s backups
    dropped), and reserved; ``solve`` plans own backups on the instance with that memory and
    compute taken; the fallbacks are then attached to the apps without a warm backup. None when
    no fallback fits."""
    bare = Plan(tuple(replace(a, backup=None) for a in plan))
    cap = {a.name: min(v.memory_bytes for v in inst.family(a.family).variants) for a in inst.apps}
    first = place_shared(inst, bare, keep=keep_shared, cap=cap)
    if not first.shared:
        return None
    taken: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for sf in {(sf.node, sf.variant): sf for sf in first.shared}.values():
        v = inst.variant(sf.family, sf.variant)
        node = inst.node(sf.node)
        mem, mc = taken[sf.node]
        taken[sf.node] = (
            mem + v.memory_bytes,
            mc + sum(v.demand_mc(inst.app(a).request_rate, node) for a in sf.apps),
        )
    reserved = replace(
        inst,
        nodes=tuple(
            replace(n, memory_bytes=n.memory_bytes - taken[n.id][0], cores=n.cores - taken[n.id][1] / 1000)
            if n.id in taken
            else n
            for n in inst.nodes
        ),
    )
    own = solve(reserved)
    if own is None:
        return None
    warm = {a.app for a in own if a.backup is not None and a.backup.mode is Mode.WARM}
    shared = tuple(
        SharedFallback(sf.node, sf.family, sf.variant, kept)
        for sf in first.shared
        if (kept := tuple(a for a in sf.apps if a not in warm))
    )
    return Plan(own.assignments, shared)
