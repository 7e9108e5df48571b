"""``faillite plan``: plan primaries and failover backups for a cluster and its apps."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from faillite.errors import CliError
from faillite.units import format_bytes

__all__ = ["METHODS", "POLICIES", "register", "render_table"]

# Spelled out so that registering the command does not import the solver (a test pins them to
# faillite.placement's enums).
METHODS = ("exact", "greedy")
POLICIES = ("faillite", "faillite-shared", "none", "full-warm", "full-cold", "hetero-warm-only")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="plan failover backups (warm/cold, heterogeneous) for a cluster",
        description="Plan where each app's primary and failover backup run so that any single "
        "node (or failure domain) failure is survived with the least accuracy lost.",
    )
    p.add_argument(
        "--cluster",
        type=Path,
        required=True,
        help="cluster YAML: nodes (with --apps), or a `faillite up` cluster file with its apps "
        "(e.g. from `faillite sim generate`)",
    )
    p.add_argument("--apps", type=Path, help="apps YAML (default: the cluster file's own apps)")
    p.add_argument(
        "--profiles",
        type=Path,
        action="append",
        default=[],
        help="profile JSON from `faillite profile` (repeatable); default: estimated profiles",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="default: exact (a `faillite up` cluster file: its controller's method); exact falls "
        "back on greedy on very large instances, and the output says which ran",
    )
    p.add_argument(
        "--policy",
        choices=POLICIES,
        default=None,
        help="default: faillite (a `faillite up` cluster file: its controller's policy)",
    )
    p.add_argument(
        "--best-effort",
        action="store_true",
        help="faillite policy: leave apps unprotected rather than fail when not all fit",
    )
    p.add_argument(
        "--time-limit", type=float, default=10.0, metavar="SECONDS", help="exact solver time limit"
    )
    p.add_argument(
        "--gap",
        type=float,
        default=None,
        metavar="PERCENT",
        help="exact: stop once the plan is proven within PERCENT %% of the optimal weighted accuracy "
        "(status feasible, with the bound); default: prove optimality or run to the time limit",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faillite.placement import make_plan, plan_document
    from faillite.placement.model import PlanningError
    from faillite.plancfg import ConfigError, load_instance

    if args.time_limit <= 0:
        raise CliError(f"--time-limit must be positive, got {args.time_limit}")
    if args.gap is not None and not 0 <= args.gap < 100:
        raise CliError(f"--gap must be a percentage in [0, 100), got {args.gap}")
    if args.apps is not None:
        try:
            inst = load_instance(args.cluster, args.apps, args.profiles)
        except (ConfigError, PlanningError) as exc:
            raise CliError(str(exc)) from exc
        method, policy = args.method or "exact", args.policy or "faillite"
    else:
        inst, method, policy = load_up_cluster(args.cluster, args.profiles)
        method, policy = args.method or method, args.policy or policy
    args.method, args.policy = method, policy
    if args.policy == "faillite-shared":
        inst = _with_fallback_keys(inst)
    start = time.perf_counter()
    result = make_plan(
        inst,
        method=args.method,
        policy=args.policy,
        best_effort=args.best_effort,
        time_limit_s=args.time_limit,
        seed=args.seed,
        gap=None if args.gap is None else args.gap / 100,
    )
    elapsed = time.perf_counter() - start
    doc = plan_document(inst, result, solve_seconds=round(elapsed, 4), best_effort=args.best_effort)
    if args.json:
        print(json.dumps(doc, indent=2))
    elif result.plan is not None:
        print(render_table(doc))
    if result.plan is None:
        print(f"faillite plan: no plan ({result.status.value}):", file=sys.stderr)
        for reason in result.reasons:
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0


def load_up_cluster(path: Path, profile_paths: list[Path]) -> tuple[Any, str, str]:
    """The planner's instance of a `faillite up` cluster file (nodes and apps together), as the
    controller builds it, with the file's planner method and policy. Stand-in families not in
    ``profile_paths`` get estimated profiles at the file's stand-in scale."""
    from pydantic import ValidationError

    from faillite.controller.planning import SpecError, build_families, build_instance
    from faillite.launch.config import ClusterConfigError, load_cluster_config
    from faillite.placement import Node, PlannerParams
    from faillite.profiler.format import ProfileError, load_profiles
    from faillite.zoo.catalog import estimated_family_profiles

    try:
        config = load_cluster_config(path)
    except ClusterConfigError as exc:
        # a schema error may be an old nodes-only file: say how to give the apps
        schema = isinstance(exc.__cause__, ValidationError)
        hint = " (a cluster file without apps needs --apps FILE)" if schema else ""
        raise CliError(f"{exc}{hint}") from exc
    if not config.apps:
        raise CliError(f"{path}: apps: the cluster file lists no apps; give --apps FILE")
    profiles = []
    for p in profile_paths:
        try:
            profiles.extend(load_profiles(p).variants)
        except ProfileError as exc:
            raise CliError(str(exc)) from exc
    measured = {p.family for p in profiles}
    for family in config.families():
        if family in measured:
            continue
        try:
            profiles.extend(estimated_family_profiles(family, scale=config.standins.scale))
        except KeyError as exc:
            where = next(i for i, a in enumerate(config.apps) if a.family == family)
            raise CliError(f"{path}: apps[{where}].family: {exc.args[0]}") from exc
    nodes = [Node(n.id, n.memory, n.cores, domain=n.domain) for n in config.nodes]
    try:
        inst = build_instance(config.apps, nodes, build_families(profiles), PlannerParams())
    except SpecError as exc:
        raise CliError(f"{path}: {exc}") from exc
    c = config.controller
    if c.method not in METHODS:
        raise CliError(f"{path}: controller.method: {c.method!r} is not one of {', '.join(METHODS)}")
    if c.policy not in POLICIES:
        raise CliError(f"{path}: controller.policy: {c.policy!r} is not one of {', '.join(POLICIES)}")
    return inst, c.method, c.policy


def _with_fallback_keys(inst: Any) -> Any:
    """The instance with each family's fallback key (which families may share a warm fallback)."""
    import dataclasses

    from faillite.controller.shared import fallback_keys

    keys = fallback_keys((), [f.name for f in inst.families])
    families = tuple(dataclasses.replace(f, task=keys.get(f.name)) for f in inst.families)
    return dataclasses.replace(inst, families=families)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def render_table(doc: dict[str, Any]) -> str:
    head = [
        "app",
        "primary node",
        "variant",
        "acc %",
        "backup node",
        "variant",
        "acc %",
        "mode",
        "drop pp",
        "recovery ms",
    ]
    rows = [head]
    for a in doc["apps"]:
        p, b = a["primary"], a["backup"]
        if b is None:
            back = ["-", "-", "-", "none", _pct(a["expected_accuracy_drop"]), "-"]
        else:
            back = [
                b["node"],
                b["variant"],
                _pct(b["accuracy"]),
                b["mode"],
                _pct(a["expected_accuracy_drop"]),
                f"{b['expected_recovery_ms']:.0f}",
            ]
        rows.append([a["name"], p["node"], p["variant"], _pct(p["accuracy"]), *back])
    widths = [max(len(r[k]) for r in rows) for k in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    t = doc["totals"]
    rec = "-" if t["mean_expected_recovery_ms"] is None else f"{t['mean_expected_recovery_ms']:.0f} ms"
    bound = "" if doc["bound"] is None else f", bound {doc['bound']:.4f}"
    if doc["bound"] and doc["status"] == "feasible" and doc["objective"] is not None:
        bound += f" (optimal within {100 * (doc['bound'] - doc['objective']) / doc['bound']:.3f} %)"
    lines += [
        "",
        f"{t['protected']}/{t['apps']} apps protected; weighted accuracy drop after failover "
        f"{_pct(t['weighted_accuracy_drop'])} pp; mean expected recovery {rec}",
        f"warm backups {format_bytes(t['warm_backup_bytes'])}, cold reservations "
        f"{format_bytes(t['cold_reserved_bytes'])}",
        f"method {doc['method']}, policy {doc['policy']}, status {doc['status']}, "
        f"objective {doc['objective']:.4f}{bound}, {doc['solve_seconds']:.2f} s",
    ]
    shared = doc.get("shared") or []
    if shared:
        lines += ["", f"shared warm fallbacks ({format_bytes(t['shared_fallback_bytes'])}):"]
        lines += [
            f"  {sf['node']}  {sf['variant']} ({sf['family']}, acc {_pct(sf['accuracy'])} %, "
            f"{format_bytes(sf['memory_bytes'])}) answers for {', '.join(sf['apps'])}"
            for sf in shared
        ]
    return "\n".join(lines)
