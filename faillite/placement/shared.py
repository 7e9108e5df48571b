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
from dataclasses import dataclass, field, replace

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


@dataclass
class _Room:
    """Memory and compute the plan uses on each node, per failure scenario."""

    inst: Instance
    base: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # primaries + warm + fallbacks
    peak: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # worst cold reservation
    mc: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # primaries' compute
    after: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))  # (node, s) -> mc
    loaded: set[tuple[str, str]] = field(default_factory=set)  # fallbacks placed: (node, variant)
    scenarios_of: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # node -> s

    def free(self, n: Node) -> int:
        return n.memory_bytes - self.base[n.id] - self.peak[n.id]

    def fits(self, n: Node, v: Variant, apps: Sequence[App], scenarios: Sequence[frozenset[str]]) -> bool:
        extra = 0 if (n.id, v.name) in self.loaded else v.memory_bytes
        if self.free(n) < extra:
            return False
        cap, mc = n.capacity_mc, self.mc[n.id]
        return all(
            mc + self.after[n.id, s] + need <= cap for s, need in self._needs(n, v, apps, scenarios).items()
        )

    def take(self, n: Node, v: Variant, apps: Sequence[App], scenarios: Sequence[frozenset[str]]) -> None:
        if (n.id, v.name) not in self.loaded:
            self.base[n.id] += v.memory_bytes
            self.loaded.add((n.id, v.name))
        for s, need in self._needs(n, v, apps, scenarios).items():
            self.after[n.id, s] += need

    def _needs(
        self, n: Node, v: Variant, apps: Sequence[App], scenarios: Sequence[frozenset[str]]
    ) -> dict[int, int]:
        """Compute the fallback on ``n`` needs after each scenario that fails some of ``apps``
        (only those: the others need nothing of it)."""
        out: dict[int, int] = defaultdict(int)
        for a in apps:
            need = v.demand_mc(a.request_rate, n)
            if need:
                for s in self.scenarios_of[a.primary_node or ""]:
                    if n.id not in scenarios[s]:
                        out[s] += need
        return out


def _room(inst: Instance, plan: Plan, scenarios: Sequence[frozenset[str]]) -> _Room:
    room = _Room(inst)
    for s, failed in enumerate(scenarios):
        for node in failed:
            room.scenarios_of[node].append(s)
    cold: dict[tuple[str, int], int] = defaultdict(int)
    for asg in plan:
        app = inst.app(asg.app)
        pv = inst.variant(app.family, asg.primary_variant)
        p = inst.node(asg.primary_node)
        room.base[p.id] += pv.memory_bytes
        room.mc[p.id] += pv.demand_mc(app.request_rate, p)
        b = asg.backup
        if b is None:
            continue
        n, v = inst.node(b.node), inst.variant(app.family, b.variant)
        if b.mode is Mode.WARM:
            room.base[n.id] += v.memory_bytes
        for s, failed in enumerate(scenarios):
            if p.id in failed and n.id not in failed:
                room.after[n.id, s] += v.demand_mc(app.request_rate, n)
                if b.mode is Mode.COLD:
                    cold[n.id, s] += v.memory_bytes
    for (n_id, _), mem in cold.items():
        room.peak[n_id] = max(room.peak[n_id], mem)
    return room


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
    room = _room(inst, plan, scenarios)
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
            options = []
            # large clusters: only the nodes with most memory free (each pass, as fallbacks fill them)
            pool = live if len(live) <= scan else sorted(live, key=lambda n: (-room.free(n), n.id))[:scan]
            for n in pool:
                for fam, v in variants:
                    served = reach(n, v, todo)
                    if served and room.fits(n, v, served, scenarios):
                        options.append((len(served), v.accuracy, n, fam, v, served))
            if not options:
                break
            most = max(o[0] for o in options)
            options = [o for o in options if o[0] == most]
            best_acc = max(o[1] for o in options)
            options = [o for o in options if o[1] >= best_acc - accuracy_slack]
            _, _, n, fam, v, served = min(
                options, key=lambda o: (o[4].memory_bytes, -o[1], -room.free(o[2]), o[2].id, o[4].name)
            )
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
