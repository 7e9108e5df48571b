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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from faillite.placement.feasibility import Candidate, Context, plan_score
from faillite.placement.greedy import polish
from faillite.placement.model import ACCURACY_SCALE, WEIGHT_SCALE, Mode, Plan, PlanResult, Status

__all__ = ["CandidateModel", "build_model", "solve_exact"]


@dataclass
class CandidateModel:
    model: cp_model.CpModel
    choices: list[list[tuple[Candidate, cp_model.IntVar]]]  # per app
    slack: list[cp_model.IntVar] = field(default_factory=list)
    empty_apps: list[int] = field(default_factory=list)  # apps without any candidate
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


def _scenario_filter(ctx: Context) -> Callable[[int, int], bool]:
    """Whether scenario s needs its own constraints on surviving node n.

    It does not when a larger scenario (a node's failure domain) also leaves n standing: that
    one's sums have every term of s's (the same apps fail over, and more), so it implies s's.
    """
    sets = [frozenset(ctx.node_index[x] for x in sc.failed) for sc in ctx.scenarios]
    supers: list[list[frozenset[int]]] = []
    for a in sets:
        near = {t for x in a for t in ctx.scenarios_of[x]}
        supers.append([sets[t] for t in near if a < sets[t]])

    def needed(s: int, n: int) -> bool:
        return all(n in sup for sup in supers[s])

    return needed


def build_model(ctx: Context, *, elastic: bool = False) -> CandidateModel:
    """The CP-SAT model; ``elastic`` adds slack to every capacity constraint (for explanations)."""
    m = cp_model.CpModel()
    cm = CandidateModel(m, [])
    n_nodes = len(ctx.nodes)
    needed = _scenario_filter(ctx)
    prim_mem: list[list[tuple[int, cp_model.IntVar]]] = [[] for _ in range(n_nodes)]
    prim_mc: list[list[tuple[int, cp_model.IntVar]]] = [[] for _ in range(n_nodes)]
    warm: list[list[tuple[int, cp_model.IntVar]]] = [[] for _ in range(n_nodes)]
    cold: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = defaultdict(list)  # (scenario, node)
    after: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = defaultdict(list)  # compute
    scen: dict[tuple[int, int], list[int]] = {}  # (primary, backup) -> scenarios to constrain
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
            key = (c.primary, c.backup)
            if key not in scen:
                scen[key] = [s for s in ctx.scenarios_of[c.primary] if needed(s, c.backup)]
            for s in scen[key]:
                if c.mode is Mode.COLD:
                    cold[s, c.backup].append((c.mem, x))
                if c.demand_mc:
                    after[s, c.backup].append((c.demand_mc, x))

    slacks: dict[str, cp_model.IntVar] = {}

    def bounded(terms: list[tuple[int, cp_model.IntVar]], cap: int, name: str, ub: int) -> None:
        if sum(c for c, _ in terms) <= cap:  # it cannot bind
            return
        if not elastic:
            m.add(_ws(terms) <= cap)
            return
        if name not in slacks:
            slacks[name] = m.new_int_var(0, ub, name)
            cm.slack.append(slacks[name])
        m.add(_ws(terms) <= cap + slacks[name])

    per_node: dict[int, list[list[tuple[int, cp_model.IntVar]]]] = defaultdict(list)
    for (_, n), terms in cold.items():
        per_node[n].append(terms)
    for n, node in enumerate(ctx.nodes):
        # memory: one knapsack per failure scenario (primaries + warm + that scenario's cold)
        budget = node.memory_bytes - ctx.fixed_mem[n]
        base = prim_mem[n] + warm[n]
        for terms in per_node[n] or [[]]:
            bounded(base + terms, budget, f"smem{n}", 1 << 50)  # one slack per node, as one peak
        bounded(prim_mc[n], node.capacity_mc - ctx.fixed_mc[n], f"smc{n}", 1 << 40)
    for (s, n), terms in after.items():
        bounded(prim_mc[n] + terms, ctx.nodes[n].capacity_mc - ctx.fixed_mc[n], f"smc{s}_{n}", 1 << 40)
    return cm


def _values(solver: cp_model.CpSolver) -> list[int]:
    return list(solver.response_proto.solution)


def _decode(ctx: Context, cm: CandidateModel, sol: Sequence[int]) -> Plan:
    chosen = []
    for xs in cm.choices:
        for c, x in xs:
            if sol[x.index]:
                chosen.append(ctx.assignment(c))
                break
    return Plan(tuple(chosen))


def _objective(m: cp_model.CpModel, terms: list[tuple[int, int]], *, maximize: bool) -> None:
    """Set the objective sum(coef * var) (terms: (coef, variable index)) straight in the proto:
    the Python expression route costs a noticeable share of a sub-second solve."""
    m.clear_objective()
    obj = m.proto.objective
    obj.vars.extend([k for _, k in terms])
    obj.coeffs.extend([-c if maximize else c for c, _ in terms])
    if maximize:
        obj.scaling_factor = -1


def _plan_values(cm: CandidateModel, ctx: Context, plan: Plan) -> dict[int, bool]:
    """Variable values (by index) of a plan: a complete hint, so CP-SAT starts from it as it is."""
    by_app = plan.by_app()
    value: dict[int, bool] = {}
    for i, xs in enumerate(cm.choices):
        asg = by_app.get(ctx.apps[i].name)
        b = None if asg is None else asg.backup
        want = None
        if asg is not None:
            want = (
                ctx.node_index.get(asg.primary_node),
                None if b is None else ctx.node_index.get(b.node),
                None if b is None else b.variant,
                None if b is None else b.mode,
            )
        for c, x in xs:
            value[x.index] = want == (c.primary, c.backup, c.variant.name if c.variant else None, c.mode)
    return value


def _set_hints(m: cp_model.CpModel, cm: CandidateModel, value: Mapping[int, int] | Sequence[int]) -> None:
    m.clear_hints()
    idx = [x.index for xs in cm.choices for _, x in xs]
    idx += [y.index for y, _ in cm.links]
    vals = [int(value[k]) for k in idx[: len(idx) - len(cm.links)]]
    vals += [int(any(value[x.index] for x in group)) for _, group in cm.links]
    hint = m.proto.solution_hint
    hint.vars.extend(idx)
    hint.values.extend(vals)


def accuracy_dominated(cm: CandidateModel) -> dict[int, int]:
    """Candidates that phase 1 (accuracy only) can do without: variable index -> its dominator's.

    For the same app, primary and backup node, candidate k dominates c when it keeps at least
    the accuracy with no more memory and compute, and k is cold or c is warm (a cold backup's
    memory counts only in its primary's failure scenarios, a warm one's in all). Swapping c
    for k keeps a plan feasible and its accuracy no lower, so the accuracy optimum is the same;
    recovery time is ignored here, which is why phase 2 (the tie-breaks) keeps them all.
    """
    out: dict[int, int] = {}
    for xs in cm.choices:
        groups: dict[tuple[int, int], list[tuple[Candidate, cp_model.IntVar]]] = defaultdict(list)
        for c, x in xs:
            if c.backup is not None:
                groups[c.primary, c.backup].append((c, x))
        for group in groups.values():
            group.sort(key=lambda cx: (-cx[0].acc, cx[0].mem, cx[0].demand_mc, cx[0].mode is Mode.WARM))
            kept: list[tuple[Candidate, cp_model.IntVar]] = []
            for c, x in group:
                for k, kx in kept:
                    if (
                        k.acc >= c.acc
                        and k.mem <= c.mem
                        and k.demand_mc <= c.demand_mc
                        and (k.mode is Mode.COLD or c.mode is Mode.WARM)
                    ):
                        out[x.index] = kx.index
                        break
                else:
                    kept.append((c, x))
    return out


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
    workers: int = 1,
    hints: Sequence[Plan] = (),
    gap: float | None = None,
) -> PlanResult:
    """Solve to proven optimality within ``time_limit_s`` (plus a share for the tie-breaks).

    ``gap`` (a fraction, e.g. 0.001) stops phase 1 once its plan is proven within that
    relative distance of the optimum; the status is then ``feasible`` (``optimal`` only if
    the plan is proven optimal anyway) and ``bound`` says how close it is.
    """
    cm = build_model(ctx)
    if cm.empty_apps:
        return PlanResult(Status.INFEASIBLE, "exact", policy)
    m = cm.model
    acc_terms = [(c.acc, x.index) for xs in cm.choices for c, x in xs]
    _objective(m, acc_terms, maximize=True)
    dominated = accuracy_dominated(cm)
    if hints:
        value = _plan_values(cm, ctx, hints[0])
        for x, k in dominated.items():  # the hint's dominated choices become their dominators
            if value[x]:
                value[x], value[k] = False, True
        _set_hints(m, cm, value)
    m1 = m.clone()
    for x in dominated:
        m1.proto.variables[x].domain[1] = 0
    s1 = _solver(time_limit_s, seed, workers)
    if gap is not None:
        s1.parameters.relative_gap_limit = gap
    st1 = s1.solve(m1)
    wall = s1.wall_time
    if st1 == cp_model.INFEASIBLE:
        return PlanResult(Status.INFEASIBLE, "exact", policy, solver_seconds=wall)
    if st1 not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return PlanResult(Status.UNKNOWN, "exact", policy, solver_seconds=wall)
    best = round(s1.objective_value)
    # with a gap, OPTIMAL may only mean "within the gap": proven needs the bound reached
    proven = st1 == cp_model.OPTIMAL and (gap is None or s1.best_objective_bound <= best)
    bound = s1.best_objective_bound / (ACCURACY_SCALE * WEIGHT_SCALE)
    plan = _decode(ctx, cm, _values(s1))
    # Phase 1 ignored recovery time (cold dominates warm there): climb from its plan first,
    # which turns cold backups warm where they fit, so that phase 2 starts close to its goal.
    polished = polish(ctx, plan)
    if plan_score(ctx.inst, polished) > plan_score(ctx.inst, plan):
        plan = polished
    best = max(best, plan_score(ctx.inst, plan).accuracy)
    # phase 2: tie-breaks with the accuracy fixed at its best value, over all candidates
    _set_hints(m, cm, _plan_values(cm, ctx, plan))
    m.add(_ws([(c.acc, x) for xs in cm.choices for c, x in xs]) >= best)
    mem_bound = sum(max((c.mem_mib for c, _ in xs), default=0) for xs in cm.choices) + 1
    _objective(
        m, [(c.rt_ms * mem_bound + c.mem_mib, x.index) for xs in cm.choices for c, x in xs], maximize=False
    )
    # The tie-breaks get a small share of time: accuracy is what the proof is about.
    s2 = _solver(min(max(time_limit_s - wall, 0.05), 0.1 + 0.5 * wall), seed, workers)
    st2 = s2.solve(m)
    wall += s2.wall_time
    if st2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        tied = _decode(ctx, cm, _values(s2))
        if plan_score(ctx.inst, tied) >= plan_score(ctx.inst, plan):
            plan = tied
    return PlanResult(
        Status.OPTIMAL if proven else Status.FEASIBLE,
        "exact",
        policy,
        plan,
        plan_score(ctx.inst, plan),
        bound,
        solver_seconds=wall,
        tiebreaks_optimal=st2 == cp_model.OPTIMAL,
    )
