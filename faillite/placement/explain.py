"""Why no plan exists: reasons that name the app, node, failure scenario, bytes and budget.

Three levels, cheapest first:

1. static: a given primary that does not fit or misses its SLO; an app with no backup
   candidate at all (and why, node by node);
2. counting: a failure scenario whose apps need more backup memory than all surviving nodes
   have free, even with every app on its smallest variant;
3. elastic: CP-SAT finds the plan that overloads capacity least; its overloads are reported
   ("node edge-3: 2.1 GiB needed after a failure of edge-1 ..., budget 2.0 GiB").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ortools.sat.python import cp_model

from faillite.placement.feasibility import Context
from faillite.placement.model import Mode, Plan

__all__ = ["counting_reasons", "elastic_reasons", "gib", "plan_overloads", "static_reasons"]


def gib(n: float) -> str:
    if abs(n) >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    return f"{n / (1 << 20):.1f} MiB"


def static_reasons(ctx: Context) -> list[str]:
    out: list[str] = []
    mem: dict[int, int] = defaultdict(int)
    mc: dict[int, int] = defaultdict(int)
    for i, app in enumerate(ctx.apps):
        v = ctx.primary_variant[i]
        if app.primary_node is None:
            if not ctx.primary_nodes(i):
                out.append(
                    f"app {app.name}: no node can host its primary {v.name} ({gib(v.memory_bytes)}, "
                    f"latency {v.latency_ms:g} ms, SLO {app.slo_ms:g} ms)"
                )
            continue
        n = ctx.node_index[app.primary_node]
        node = ctx.nodes[n]
        mem[n] += v.memory_bytes
        mc[n] += v.demand_mc(app.request_rate, node)
        if v.latency_on(node) > app.slo_ms:
            out.append(
                f"app {app.name}: primary {v.name} takes {v.latency_on(node):g} ms on node {node.id}, "
                f"SLO {app.slo_ms:g} ms"
            )
    for n, used in sorted(mem.items()):
        node = ctx.nodes[n]
        if used > node.memory_bytes:
            out.append(f"node {node.id}: primaries need {gib(used)}, budget {gib(node.memory_bytes)}")
        if mc[n] > node.capacity_mc:
            out.append(
                f"node {node.id}: primaries need {mc[n] / 1000:g} cores of compute, it has {node.cores:g}"
            )
    if out or not ctx.rules.require_backup:
        return out
    for i, app in enumerate(ctx.apps):
        prims = ctx.primary_nodes(i)
        if any(ctx.has_candidate(i, p) for p in prims):
            continue
        if app.primary_node is None:
            out.append(f"app {app.name}: wherever its primary goes, no node can hold a backup")
            continue
        p = prims[0]
        why = [_why_not(ctx, i, p, n) for n in range(len(ctx.nodes))]
        out.append(f"app {app.name}: no node can hold a backup: " + "; ".join(why))
    return out


def _why_not(ctx: Context, i: int, p: int, n: int) -> str:
    app, node = ctx.apps[i], ctx.nodes[n]
    if n == p:
        return f"{node.id} holds its primary"
    if not ctx.backup_node_ok(p, n):
        return f"{node.id} is in the primary's failure domain {node.domain}"
    variants = ctx.allowed[i]
    if not variants:
        return f"{node.id}: the policy allows no backup variant"
    fast = [v for v in variants if v.latency_on(node) <= app.slo_ms]
    if not fast:
        best = min(v.latency_on(node) for v in variants)
        return f"{node.id}: every variant takes at least {best:g} ms, SLO {app.slo_ms:g} ms"
    free = node.memory_bytes - ctx.fixed_mem[n]
    small = [v for v in fast if v.memory_bytes <= free]
    if not small:
        need = min(v.memory_bytes for v in fast)
        return f"{node.id}: smallest fitting variant needs {gib(need)}, {gib(free)} left after primaries"
    cap = node.capacity_mc - ctx.fixed_mc[n]
    cheap = [v for v in small if v.demand_mc(app.request_rate, node) <= cap]
    if not cheap:
        return f"{node.id}: not enough compute left ({cap / 1000:g} cores) for {app.request_rate:g} req/s"
    if not any(ctx.modes_for(i, v, node) for v in cheap):
        cold = min(ctx.inst.params.cold_recovery_ms(v, node) for v in cheap)
        limit = app.max_recovery_ms
        if app.critical:
            return f"{node.id}: the app is critical (warm only) but the policy allows no warm backup"
        if limit is not None and ctx.inst.params.warm_recovery_ms() > limit:
            return f"{node.id}: even a warm switch takes longer than max recovery {limit:g} ms"
        return f"{node.id}: a cold load takes at least {cold:g} ms, over max recovery {limit} ms, and no warm"
    return f"{node.id}: unusable"


def counting_reasons(ctx: Context) -> list[str]:
    """Scenarios whose apps cannot fit on the survivors even on their smallest backups."""
    if not ctx.rules.require_backup:
        return []
    out: list[str] = []
    on_node: dict[int, list[int]] = defaultdict(list)  # node -> apps with their primary given there
    for i, a in enumerate(ctx.apps):
        if a.primary_node is not None:
            on_node[ctx.node_index[a.primary_node]].append(i)
    room = [max(0, n.memory_bytes - ctx.fixed_mem[k]) for k, n in enumerate(ctx.nodes)]
    total = sum(room)
    smallest = _SmallestBackup(ctx)
    for sc in ctx.scenarios:
        failed = sorted({ctx.node_index[x] for x in sc.failed})
        apps = sorted(i for n in failed for i in on_node[n])
        if not apps:
            continue
        need = sum(smallest.of(i, ctx.node_index[ctx.apps[i].primary_node or ""]) for i in apps)
        free = total - sum(room[n] for n in failed)
        if need > free:
            out.append(
                f"{sc.describe()}: its {len(apps)} apps need at least {gib(need)} of backups, "
                f"the surviving nodes have {gib(free)} free after primaries"
            )
    return out


class _SmallestBackup:
    """The least memory any backup candidate of an app takes (``min(c.mem for c in
    ctx.candidates(i, p))``, 0 without one), found without listing every node's candidates:
    options in order of memory, nodes in order of memory left, first fit wins."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.memo: dict[tuple[int, int], int] = {}
        by_speed: dict[float, list[int]] = defaultdict(list)
        for k, n in enumerate(ctx.nodes):
            by_speed[n.speed].append(k)
        self.left = [
            (n.memory_bytes - ctx.fixed_mem[k], n.capacity_mc - ctx.fixed_mc[k])
            for k, n in enumerate(ctx.nodes)
        ]
        self.by_speed = {s: sorted(ks, key=lambda k: -self.left[k][0]) for s, ks in by_speed.items()}

    def of(self, i: int, p: int) -> int:
        key = (i, p)
        if key not in self.memo:
            self.memo[key] = self._find(i, p)
        return self.memo[key]

    def _find(self, i: int, p: int) -> int:
        ctx = self.ctx
        kept = ctx.kept_candidate(i, p)
        if kept is not None:
            return kept.mem
        best: int | None = None
        group, gp, left = ctx.group, ctx.group[p], self.left
        for speed, nodes in self.by_speed.items():
            for c in sorted(ctx._options(i, speed, True), key=lambda c: c.mem):
                if best is not None and c.mem >= best:
                    break
                for n in nodes:
                    mem_left, mc_left = left[n]
                    if mem_left < c.mem:
                        break
                    if group[n] != gp and c.demand_mc <= mc_left:
                        best = c.mem
                        break
        return 0 if best is None else best


@dataclass(frozen=True)
class Overload:
    node: str
    scenario: str | None  # None: at all times
    kind: str  # "memory" or "compute"
    need: int
    budget: int
    detail: str

    def message(self) -> str:
        if self.kind == "memory":
            when = "at all times" if self.scenario is None else f"after {self.scenario}"
            return (
                f"node {self.node}: {gib(self.need)} needed {when} ({self.detail}), budget {gib(self.budget)}"
            )
        when = "" if self.scenario is None else f" after {self.scenario}"
        return (
            f"node {self.node}: {self.need / 1000:g} cores of compute needed{when} ({self.detail}), "
            f"it has {self.budget / 1000:g}"
        )


def plan_overloads(ctx: Context, plan: Plan) -> list[Overload]:
    """Every capacity constraint the plan breaks, largest overload first."""
    inst = ctx.inst
    base = [0] * len(ctx.nodes)
    warm = [0] * len(ctx.nodes)
    mc = [0] * len(ctx.nodes)
    cold: dict[tuple[int, int], int] = defaultdict(int)
    after: dict[tuple[int, int], int] = defaultdict(int)
    for asg in plan:
        app = inst.app(asg.app)
        p = ctx.node_index[asg.primary_node]
        pv = inst.variant(app.family, asg.primary_variant)
        base[p] += pv.memory_bytes
        mc[p] += pv.demand_mc(app.request_rate, ctx.nodes[p])
        b = asg.backup
        if b is None:
            continue
        n = ctx.node_index[b.node]
        v = inst.variant(app.family, b.variant)
        if b.mode is Mode.WARM:
            warm[n] += v.memory_bytes
        for s in ctx.scenarios_of[p]:
            after[s, n] += v.demand_mc(app.request_rate, ctx.nodes[n])
            if b.mode is Mode.COLD:
                cold[s, n] += v.memory_bytes
    out: list[Overload] = []
    for n, node in enumerate(ctx.nodes):
        need = base[n] + warm[n]
        if need > node.memory_bytes:
            out.append(
                Overload(
                    node.id,
                    None,
                    "memory",
                    need,
                    node.memory_bytes,
                    f"{gib(base[n])} primaries, {gib(warm[n])} warm backups",
                )
            )
        if mc[n] > node.capacity_mc:
            out.append(Overload(node.id, None, "compute", mc[n], node.capacity_mc, "primaries"))
    for (s, n), res in cold.items():
        node = ctx.nodes[n]
        need = base[n] + warm[n] + res
        if need > node.memory_bytes:
            out.append(
                Overload(
                    node.id,
                    ctx.scenarios[s].describe(),
                    "memory",
                    need,
                    node.memory_bytes,
                    f"{gib(res)} cold reservations on top of {gib(base[n])} primaries "
                    f"and {gib(warm[n])} warm backups",
                )
            )
    for (s, n), extra in after.items():
        node = ctx.nodes[n]
        if mc[n] + extra > node.capacity_mc:
            out.append(
                Overload(
                    node.id,
                    ctx.scenarios[s].describe(),
                    "compute",
                    mc[n] + extra,
                    node.capacity_mc,
                    f"{extra / 1000:g} cores for failed-over apps",
                )
            )
    return sorted(out, key=lambda o: (o.budget - o.need, o.node))


def elastic_reasons(ctx: Context, *, time_limit_s: float = 5.0, seed: int = 0, limit: int = 5) -> list[str]:
    """Solve with slack on every capacity; report the overloads of the least-overloaded plan."""
    from faillite.placement.exact import build_model

    cm = build_model(ctx, elastic=True)
    if cm.empty_apps:
        return []
    cm.model.minimize(cp_model.LinearExpr.sum(cm.slack))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.random_seed = seed
    solver.parameters.num_workers = 1
    if solver.solve(cm.model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return []
    plan = Plan(tuple(ctx.assignment(c) for xs in cm.choices for c, x in xs if solver.boolean_value(x)))
    overloads = plan_overloads(ctx, plan)
    msgs = [o.message() for o in overloads[:limit]]
    if len(overloads) > limit:
        msgs.append(f"... and {len(overloads) - limit} more overloads")
    if msgs:
        msgs[0] = "even the least-overloaded plan breaks a budget: " + msgs[0]
    return msgs
