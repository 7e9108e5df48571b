"""The exact planner: OR-Tools CP-SAT over one boolean per candidate.

Each app picks exactly one candidate (primary node + backup choice). Constraints, per node n
with budget B and compute capacity C:

- memory at all times: primaries(n) + warm(n) + peak(n) <= B, where peak(n) is at least the
  cold reservations on n for every failure scenario (a node, or a failure domain);
- compute after each failure scenario: primaries(n) + backups on n of the apps that scenario
  fails <= C (and primaries alone <= C).

The objective is lexicographic, solved in two phases: maximise the weighted accuracy kept
after failover; then, with that value fixed, minimise recovery_ms x (M + 1) + memory_mib,
where M bounds the memory term (so recovery time ranks first, memory second). "optimal" is
about the accuracy (phase 1); the tie-breaks get a small share of the time and say whether
they were proven (``tiebreaks_optimal``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from faillite.placement.feasibility import Candidate, Context, plan_score
from faillite.placement.model import ACCURACY_SCALE, WEIGHT_SCALE, Mode, Plan, PlanResult, Status

__all__ = ["CandidateModel", "build_model", "solve_exact"]


@dataclass
class CandidateModel:
    model: cp_model.CpModel
    choices: list[list[tuple[Candidate, cp_model.IntVar]]]  # per app
    slack: list[cp_model.IntVar] = field(default_factory=list)
    empty_apps: list[int] = field(default_factory=list)  # apps without any candidate
    peaks: list[tuple[cp_model.IntVar, list[list[tuple[int, cp_model.IntVar]]]]] = field(default_factory=list)
    links: list[tuple[cp_model.IntVar, list[cp_model.IntVar]]] = field(default_factory=list)


def _ws(terms: Sequence[tuple[int, cp_model.IntVar]]) -> cp_model.LinearExprT:
    return cp_model.LinearExpr.weighted_sum([x for _, x in terms], [c for c, _ in terms])


def _app_candidates(ctx: Context, i: int) -> list[Candidate]:
    out: list[Candidate] = []
    for p in ctx.primary_nodes(i):
        out.extend(ctx.candidates(i, p))
        if not ctx.rules.require_backup:
            out.append(ctx.no_backup(i, p))
    return out


def build_model(ctx: Context, *, elastic: bool = False) -> CandidateModel:
    """The CP-SAT model; ``elastic`` adds slack to every capacity constraint (for explanations)."""
    m = cp_model.CpModel()
    cm = CandidateModel(m, [])
    n_nodes = len(ctx.nodes)
    prim_mem: list[list[tuple[int, cp_model.IntVar]]] = [[] for _ in range(n_nodes)]
    prim_mc: list[list[tuple[int, cp_model.IntVar]]] = [[] for _ in range(n_nodes)]
    warm: list[list[tuple[int, cp_model.IntVar]]] = [[] for _ in range(n_nodes)]
    cold: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = defaultdict(list)  # (scenario, node)
    after: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = defaultdict(list)  # compute
    for i, app in enumerate(ctx.apps):
        cands = _app_candidates(ctx, i)
        xs = [(c, m.new_bool_var(f"x{i}_{k}")) for k, c in enumerate(cands)]
        cm.choices.append(xs)
        if not xs:
            cm.empty_apps.append(i)
            continue
        m.add_exactly_one(x for _, x in xs)
        if app.primary_node is None:
            pv = ctx.primary_variant[i]
            by_p: dict[int, list[cp_model.IntVar]] = defaultdict(list)
            for c, x in xs:
                by_p[c.primary].append(x)
            for p, group in by_p.items():
                y = m.new_bool_var(f"y{i}_{p}")
                m.add(y == cp_model.LinearExpr.sum(group))
                cm.links.append((y, group))
                prim_mem[p].append((pv.memory_bytes, y))
                prim_mc[p].append((pv.demand_mc(app.request_rate, ctx.nodes[p]), y))
        for c, x in xs:
            if c.backup is None:
                continue
            if c.mode is Mode.WARM:
                warm[c.backup].append((c.mem, x))
            for s in ctx.scenarios_of[c.primary]:
                if c.mode is Mode.COLD:
                    cold[s, c.backup].append((c.mem, x))
                if c.demand_mc:
                    after[s, c.backup].append((c.demand_mc, x))

    def slack(name: str, ub: int) -> int | cp_model.IntVar:
        if not elastic:
            return 0
        v = m.new_int_var(0, ub, name)
        cm.slack.append(v)
        return v

    peaks: dict[int, list[list[tuple[int, cp_model.IntVar]]]] = defaultdict(list)
    for (_, n), terms in cold.items():
        peaks[n].append(terms)
    for n, node in enumerate(ctx.nodes):
        budget = node.memory_bytes - ctx.fixed_mem[n]
        usage = _ws(prim_mem[n] + warm[n])
        if peaks[n]:
            peak = m.new_int_var(0, max(budget, 0) + sum(c for t in peaks[n] for c, _ in t), f"peak{n}")
            for terms in peaks[n]:
                m.add(peak >= _ws(terms))
            cm.peaks.append((peak, peaks[n]))
            usage = usage + peak
        if prim_mem[n] or warm[n] or peaks[n]:
            m.add(usage <= budget + slack(f"smem{n}", 1 << 50))
        cap = node.capacity_mc - ctx.fixed_mc[n]
        if prim_mc[n]:
            m.add(_ws(prim_mc[n]) <= cap + slack(f"smc{n}", 1 << 40))
    for (s, n), terms in after.items():
        cap = ctx.nodes[n].capacity_mc - ctx.fixed_mc[n]
        load = _ws(prim_mc[n] + terms)
        m.add(load <= cap + slack(f"smc{s}_{n}", 1 << 40))
    return cm


def _decode(ctx: Context, cm: CandidateModel, solver: cp_model.CpSolver) -> Plan:
    chosen = []
    for xs in cm.choices:
        for c, x in xs:
            if solver.boolean_value(x):
                chosen.append(ctx.assignment(c))
                break
    return Plan(tuple(chosen))


def _hint(cm: CandidateModel, ctx: Context, plan: Plan) -> None:
    """A complete hint (every variable), so that CP-SAT starts from this plan as it is."""
    by_app = plan.by_app()
    value: dict[int, bool] = {}
    for i, xs in enumerate(cm.choices):
        asg = by_app.get(ctx.apps[i].name)
        for c, x in xs:
            value[x.index] = asg is not None and ctx.assignment(c) == asg
    _set_hints(cm, value)


def _set_hints(cm: CandidateModel, value: dict[int, bool]) -> None:
    m = cm.model
    m.clear_hints()
    for xs in cm.choices:
        for _, x in xs:
            m.add_hint(x, value[x.index])
    for y, group in cm.links:
        m.add_hint(y, any(value[x.index] for x in group))
    for peak, lists in cm.peaks:
        m.add_hint(peak, max(sum(c for c, x in terms if value[x.index]) for terms in lists))


def _solver(time_limit_s: float, seed: int, workers: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit_s, 0.01)
    solver.parameters.random_seed = seed
    solver.parameters.num_workers = workers
    # Probing costs seconds of presolve on these models and did not pay for itself in our runs.
    solver.parameters.cp_model_probing_level = 0
    return solver


def solve_exact(
    ctx: Context,
    *,
    policy: str,
    time_limit_s: float = 10.0,
    seed: int = 0,
    workers: int = 2,
    hints: Sequence[Plan] = (),
) -> PlanResult:
    """Solve to proven optimality within ``time_limit_s`` (plus up to 10 % for the tie-breaks)."""
    cm = build_model(ctx)
    if cm.empty_apps:
        return PlanResult(Status.INFEASIBLE, "exact", policy)
    for h in hints[:1]:
        _hint(cm, ctx, h)
    m = cm.model
    acc = _ws([(c.acc, x) for xs in cm.choices for c, x in xs])
    m.maximize(acc)
    s1 = _solver(time_limit_s, seed, workers)
    st1 = s1.solve(m)
    wall = s1.wall_time
    if st1 == cp_model.INFEASIBLE:
        return PlanResult(Status.INFEASIBLE, "exact", policy, solver_seconds=wall)
    if st1 not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return PlanResult(Status.UNKNOWN, "exact", policy, solver_seconds=wall)
    best = round(s1.objective_value)
    bound = s1.best_objective_bound / (ACCURACY_SCALE * WEIGHT_SCALE)
    plan = _decode(ctx, cm, s1)
    # phase 2: tie-breaks with the accuracy fixed at its best value
    _set_hints(cm, {x.index: s1.boolean_value(x) for xs in cm.choices for _, x in xs})
    m.add(acc >= best)
    mem_bound = sum(max((c.mem_mib for c, _ in xs), default=0) for xs in cm.choices) + 1
    m.minimize(_ws([(c.rt_ms * mem_bound + c.mem_mib, x) for xs in cm.choices for c, x in xs]))
    # The tie-breaks get a small share of time: accuracy is what the proof is about.
    s2 = _solver(min(max(time_limit_s - wall, 0.05), 0.1 + 0.5 * wall), seed, workers)
    st2 = s2.solve(m)
    wall += s2.wall_time
    if st2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        plan = _decode(ctx, cm, s2)
    status = Status.OPTIMAL if st1 == cp_model.OPTIMAL else Status.FEASIBLE
    return PlanResult(
        status,
        "exact",
        policy,
        plan,
        plan_score(ctx.inst, plan),
        bound,
        solver_seconds=wall,
        tiebreaks_optimal=st2 == cp_model.OPTIMAL,
    )
