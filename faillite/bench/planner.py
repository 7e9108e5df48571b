"""``faillite bench planner``: solve time of exact and greedy, and greedy's gap to exact.

Instances are generated (``faillite.placement.random_instance``) from stand-in families with
estimated profiles; node budgets are the primaries' memory x ``--slack``, so most backups must
be smaller variants. For each size and seed: greedy, then exact with greedy's plan as a hint.
The gap is (exact - greedy) / exact on the weighted accuracy, counted only where exact proved
optimality; where it did not, the gap to exact's proven bound is reported instead.
Every plan is checked by the independent checker (``faillite.plancheck``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass

from faillite.placement import Family, Method, make_plan, plan_document, random_instance
from faillite.plancfg import variant_from_profile
from faillite.plancheck import check
from faillite.zoo.catalog import estimated_family_profiles

__all__ = ["FAMILIES", "register", "run_benchmark"]

FAMILIES = ("ResNet", "EfficientNet", "MobileNet", "RegNet", "ConvNeXt")
FULL_SIZES = ((10, 4), (50, 10), (100, 20), (200, 40))
QUICK_SIZES = ((10, 4), (30, 6))
FULL_GREEDY_ONLY = ((10_000, 1_000),)
QUICK_GREEDY_ONLY = ((400, 40),)


@dataclass
class Row:
    apps: int
    nodes: int
    seed: int
    greedy_s: float
    greedy_objective: float | None
    exact_s: float | None = None
    exact_status: str | None = None
    exact_objective: float | None = None
    exact_bound: float | None = None
    violations: int = 0

    @property
    def gap(self) -> float | None:
        """Greedy's gap to exact's optimum (or to its bound when not proven), as a fraction."""
        ref = self.exact_objective if self.exact_status == "optimal" else self.exact_bound
        if ref is None or self.greedy_objective is None or ref <= 0:
            return None
        return (ref - self.greedy_objective) / ref

    @property
    def exact_gap(self) -> float | None:
        """How far exact's plan may be from the optimum: (bound - exact) / bound."""
        if self.exact_bound is None or self.exact_objective is None or self.exact_bound <= 0:
            return None
        return max(self.exact_bound - self.exact_objective, 0.0) / self.exact_bound


def _families() -> list[Family]:
    return [Family(f, tuple(variant_from_profile(p) for p in estimated_family_profiles(f))) for f in FAMILIES]


def run_benchmark(
    *,
    quick: bool,
    seeds: int,
    time_limit_s: float,
    slack: float,
    workers: int,
    gap: float | None = None,
    out: list[Row] | None = None,
    echo: bool = True,
) -> list[Row]:
    fams = _families()
    rows: list[Row] = [] if out is None else out
    sizes = [(a, n, True) for a, n in (QUICK_SIZES if quick else FULL_SIZES)]
    sizes += [(a, n, False) for a, n in (QUICK_GREEDY_ONLY if quick else FULL_GREEDY_ONLY)]
    for n_apps, n_nodes, with_exact in sizes:
        for seed in range(seeds if with_exact else 1):
            inst = random_instance(
                fams, n_apps, n_nodes, seed=seed, memory_slack=slack, domain_size=5 if n_nodes >= 10 else 0
            )
            t = time.perf_counter()
            g = make_plan(inst, method=Method.GREEDY)
            row = Row(n_apps, n_nodes, seed, time.perf_counter() - t, g.objective)
            if g.plan is not None and n_apps <= 2000:
                row.violations += len(check(plan_document(inst, g)).violations)
            if with_exact:
                t = time.perf_counter()
                e = make_plan(
                    inst, method=Method.EXACT, time_limit_s=time_limit_s, seed=seed, workers=workers, gap=gap
                )
                row.exact_s = time.perf_counter() - t
                row.exact_status, row.exact_objective, row.exact_bound = e.status.value, e.objective, e.bound
                if e.plan is not None:
                    row.violations += len(check(plan_document(inst, e)).violations)
            rows.append(row)
            if echo:
                print(
                    f"  {n_apps}x{n_nodes} seed {seed}: greedy {row.greedy_s:.3f} s"
                    + (
                        ""
                        if row.exact_s is None
                        else f", exact {row.exact_s:.3f} s ({row.exact_status}), gap {_fmt_gap(row.gap)}"
                    ),
                    file=sys.stderr,
                )
    return rows


def _fmt_gap(g: float | None) -> str:
    return "-" if g is None else f"{100 * g:.3f} %"


def summarize(rows: list[Row]) -> list[dict[str, object]]:
    out = []
    for size in dict.fromkeys((r.apps, r.nodes) for r in rows):
        rs = [r for r in rows if (r.apps, r.nodes) == size]
        ex = [r for r in rs if r.exact_s is not None]
        opt = [r for r in ex if r.exact_status == "optimal"]
        gaps = [r.gap for r in opt if r.gap is not None]
        bound_gaps = [r.gap for r in ex if r.exact_status != "optimal" and r.gap is not None]
        out.append(
            {
                "apps": size[0],
                "nodes": size[1],
                "runs": len(rs),
                "greedy_median_s": statistics.median(r.greedy_s for r in rs),
                "exact_median_s": statistics.median(r.exact_s for r in ex if r.exact_s is not None)
                if ex
                else None,
                "exact_optimal": len(opt),
                "gap_median": statistics.median(gaps) if gaps else None,
                "gap_max": max(gaps) if gaps else None,
                "gap_to_bound_max": max(bound_gaps) if bound_gaps else None,
                "exact_gap_max": max((g for r in ex if (g := r.exact_gap) is not None), default=None),
                "exact_below_greedy": sum(
                    1 for r in ex if (r.exact_objective or 0) < (r.greedy_objective or 0) - 1e-9
                ),
                "violations": sum(r.violations for r in rs),
            }
        )
    return out


def _table(summary: list[dict[str, object]]) -> str:
    def f(x: object, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    lines = [
        "apps x nodes  runs  greedy median s  exact median s  exact optimal  gap median  gap max  "
        "gap to bound max  exact to bound max  plan violations"
    ]
    for s in summary:
        gm = None if s["gap_median"] is None else 100 * float(s["gap_median"])  # type: ignore[arg-type]
        gx = None if s["gap_max"] is None else 100 * float(s["gap_max"])  # type: ignore[arg-type]
        gb = None if s["gap_to_bound_max"] is None else 100 * float(s["gap_to_bound_max"])  # type: ignore[arg-type]
        eb = None if s["exact_gap_max"] is None else 100 * float(s["exact_gap_max"])  # type: ignore[arg-type]
        lines.append(
            f"{s['apps']:>5} x {s['nodes']:<5} {s['runs']:>4}  {f(s['greedy_median_s'], '15.3f')}  "
            f"{f(s['exact_median_s'], '>14.3f') if s['exact_median_s'] is not None else '             -'}  "
            f"{s['exact_optimal']:>13}  {f(gm, '9.3f')} %  {f(gx, '6.3f')} %  {f(gb, '15.3f')} %  "
            f"{f(eb, '17.3f')} %  {s['violations']:>15}"
        )
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("planner", help="placement planner: exact vs greedy solve time and objective gap")
    p.add_argument("--quick", action="store_true", help="small sizes only (a smoke test)")
    p.add_argument("--seeds", type=int, default=None, help="instances per size (default 5, quick 2)")
    p.add_argument("--time-limit", type=float, default=10.0, help="exact solver time limit, seconds")
    p.add_argument("--slack", type=float, default=1.3, help="node memory / primaries' memory")
    p.add_argument("--workers", type=int, default=2, help="CP-SAT workers")
    p.add_argument(
        "--gap",
        type=float,
        default=None,
        metavar="PERCENT",
        help="exact stops once proven within PERCENT %% of the optimum (default: prove it)",
    )
    p.add_argument("--json", action="store_true", help="print the summary and every run as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    seeds = args.seeds or (2 if args.quick else 5)
    rows = run_benchmark(
        quick=args.quick,
        seeds=seeds,
        time_limit_s=args.time_limit,
        slack=args.slack,
        workers=args.workers,
        gap=None if args.gap is None else args.gap / 100,
        echo=not args.json,
    )
    summary = summarize(rows)
    if args.json:
        print(
            json.dumps(
                {
                    "summary": summary,
                    "runs": [asdict(r) | {"gap": r.gap, "exact_gap": r.exact_gap} for r in rows],
                },
                indent=2,
            )
        )
    else:
        print(_table(summary))
    bad = sum(int(s["violations"]) + int(s["exact_below_greedy"]) for s in summary)  # type: ignore[call-overload]
    return 1 if bad else 0
