"""One entry point: ``make_plan(instance, method=..., policy=...)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from enum import StrEnum

from faillite.placement.exact import solve_exact
from faillite.placement.explain import counting_reasons, elastic_reasons, static_reasons
from faillite.placement.feasibility import Context, plan_score
from faillite.placement.greedy import solve_greedy
from faillite.placement.model import Backup, Instance, Plan, PlanResult, SharedFallback, Status
from faillite.placement.policies import Policy, PolicyRules, rules_for
from faillite.placement.shared import shared_first, uncovered, with_shared

__all__ = ["EXACT_MAX_PAIRS", "Method", "explain", "make_plan"]

#: Elastic explanations are a CP-SAT solve: only for instances of about this many candidates.
_ELASTIC_MAX_APPS = 2000
#: Exact builds one CP-SAT choice per (app, backup node, variant, mode): beyond this many
#: (app, node) pairs greedy's plan is returned and the result's method says "greedy". Measured
#: on generated clusters (2 shared cores, 10 s limit): 400 apps x 50 nodes took 16 s in all,
#: 2,000 x 100 took 105 s (building the model, mostly); the simulator's 1,000 nodes x 10,000
#: apps are 10 M pairs.
EXACT_MAX_PAIRS = 20_000


class Method(StrEnum):
    EXACT = "exact"
    GREEDY = "greedy"


def explain(ctx: Context, *, time_limit_s: float = 5.0, seed: int = 0) -> tuple[str, ...]:
    reasons = static_reasons(ctx) or counting_reasons(ctx)
    if not reasons and len(ctx.apps) <= _ELASTIC_MAX_APPS:
        reasons = elastic_reasons(ctx, time_limit_s=time_limit_s, seed=seed)
    return tuple(reasons)


def make_plan(
    inst: Instance,
    *,
    method: Method | str = Method.EXACT,
    policy: Policy | str = Policy.FAILLITE,
    best_effort: bool = False,
    time_limit_s: float = 10.0,
    seed: int = 0,
    workers: int = 1,  # one worker: deterministic (parallel workers race to any of equal plans)
    keep: Mapping[str, Backup] | None = None,
    gap: float | None = None,
    keep_shared: Sequence[SharedFallback] = (),
    reasons: bool = True,
) -> PlanResult:
    """Plan primaries (where not given) and backups. Never raises for an infeasible instance:
    the result's status says so, with ``reasons``. ``keep`` pins apps' backups (re-planning).
    ``gap`` (exact only, a fraction): stop once the plan is proven within that relative
    distance of the optimal weighted accuracy (status ``feasible``, ``bound`` says how close).
    Policy ``faillite-shared`` adds shared warm fallbacks to the plan (``keep_shared``: those
    to keep where they still fit, when re-planning). ``reasons=False``: a missing plan comes
    without its costly explanation (static reasons still come: they are found anyway), for a
    caller that tries another way."""
    method, policy = Method(method), Policy(policy)
    rules = rules_for(policy, best_effort=best_effort)
    result = _make_plan(
        inst, method, policy, rules, keep, best_effort, time_limit_s, seed, workers, gap, reasons
    )
    if not rules.shared:
        return result
    if result.plan is None and not best_effort:
        # No plan gives every app an own backup: shared fallbacks may still protect every app,
        # with own backups where they fit. Accepted only when no app is left bare.
        loose = rules_for(policy, best_effort=True)
        alt = _make_plan(inst, method, policy, loose, keep, True, time_limit_s, seed, workers, gap)
        alt = with_shared(inst, loose, keep, alt, keep_shared)
        alt = _protection_first(inst, alt, method, loose, keep, keep_shared, time_limit_s, seed, workers, gap)
        if alt.plan is not None and not uncovered(alt.plan):
            return replace(alt, status=Status.FEASIBLE, reasons=())
        return result
    result = with_shared(inst, rules, keep, result, keep_shared)
    if best_effort:
        result = _protection_first(
            inst, result, method, rules, keep, keep_shared, time_limit_s, seed, workers, gap
        )
    return result


def _protection_first(
    inst: Instance,
    result: PlanResult,
    method: Method,
    rules: PolicyRules,
    keep: Mapping[str, Backup] | None,
    keep_shared: Sequence[SharedFallback],
    time_limit_s: float,
    seed: int,
    workers: int,
    gap: float | None,
) -> PlanResult:
    """Best effort left apps without any protection: try shared fallbacks first, own backups in
    the memory left (``shared.shared_first``), and keep whichever plan protects more apps."""
    if result.plan is None or not uncovered(result.plan):
        return result

    def solve(reserved: Instance) -> Plan | None:
        own = _make_plan(
            reserved, method, Policy.FAILLITE, rules, keep, True, time_limit_s, seed, workers, gap
        )
        return own.plan

    alt = shared_first(inst, result.plan, solve, keep_shared)
    if alt is None or len(uncovered(alt)) >= len(uncovered(result.plan)):
        return result
    return replace(
        result, status=Status.FEASIBLE, plan=alt, score=plan_score(inst, alt), tiebreaks_optimal=False
    )


def _make_plan(
    inst: Instance,
    method: Method,
    policy: Policy,
    rules: PolicyRules,
    keep: Mapping[str, Backup] | None,
    best_effort: bool,
    time_limit_s: float,
    seed: int,
    workers: int,
    gap: float | None,
    reasons: bool = True,
) -> PlanResult:
    ctx = Context(inst, rules, keep)
    static = static_reasons(ctx)
    if static:
        return PlanResult(Status.INFEASIBLE, method.value, policy.value, reasons=tuple(static))
    greedy = solve_greedy(ctx, policy=policy.value)
    if method is Method.GREEDY or len(inst.apps) * len(inst.nodes) > EXACT_MAX_PAIRS:
        result = greedy
    else:
        hints = (greedy.plan,) if greedy.plan is not None else ()
        result = solve_exact(
            ctx,
            policy=policy.value,
            time_limit_s=time_limit_s,
            seed=seed,
            workers=workers,
            hints=hints,
            gap=gap,
        )
        if (
            greedy.plan is not None
            and greedy.score is not None
            and (result.score is None or greedy.score > result.score)
        ):  # never return worse than greedy (CP-SAT out of time, or its tie-breaks unfinished)
            same_accuracy = result.score is not None and result.score.accuracy == greedy.score.accuracy
            result = PlanResult(
                result.status if same_accuracy else Status.FEASIBLE,
                "exact",
                policy.value,
                greedy.plan,
                greedy.score,
                result.bound,
                solver_seconds=result.solver_seconds,
            )
    if result.plan is None:
        why = explain(ctx, time_limit_s=min(time_limit_s, 5.0), seed=seed) if reasons else ()
        if not why and reasons:
            if result.status is Status.INFEASIBLE:
                why = ("no plan satisfies the memory and compute constraints together",)
            else:
                why = (f"no plan found by {method.value} within its limits (infeasibility not proven)",)
        return PlanResult(
            result.status,
            result.method,
            result.policy,
            bound=result.bound,
            reasons=why,
            solver_seconds=result.solver_seconds,
        )
    return result
