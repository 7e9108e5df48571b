"""The planner at the simulator's scale: ``python -m faillite.sim.planbench [--nodes N --apps M]``.

Builds a generated cluster (``faillite.sim.generate``) into the planner's instance the way the
controller does (``build_instance``, estimated profiles, fallback keys), then times each call
the simulator makes per failure: the initial ``make_plan`` (greedy) for several policies,
``replan`` without protection (the recovery program) and with it (re-protection) for one
node's failure and for a whole failure domain's, and ``settle`` (the climb back) afterwards.
Prints one line per call (seconds) and, with ``--json``, writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from faillite.controller.planning import AppSpec, build_families, build_instance
from faillite.controller.shared import fallback_keys
from faillite.placement import Instance, Node, Plan, PlannerParams, make_plan, replan
from faillite.placement.settle import settle
from faillite.sim.generate import cluster_profiles, generate_cluster
from faillite.units import parse_bytes

__all__ = ["instance_of", "main", "run"]

T = TypeVar("T")
POLICIES = ("faillite", "faillite-shared", "full-cold", "full-warm")


def instance_of(doc: dict[str, Any]) -> Instance:
    """The planner's instance of a cluster document, as the controller would build it."""
    profiles = cluster_profiles(doc)
    names = sorted({p.family for p in profiles})
    families = build_families(profiles, fallback_keys((), names))
    nodes = [
        Node(n["id"], parse_bytes(n["memory"]), float(n["cores"]), domain=n.get("domain"))
        for n in doc["nodes"]
    ]
    specs = [AppSpec.model_validate(a) for a in doc["apps"]]
    return build_instance(specs, nodes, families, PlannerParams())


def _timed(rows: list[dict[str, Any]], what: str, fn: Callable[[], T], **info: Any) -> T:
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    s, cpu = time.perf_counter() - t, time.process_time() - c
    rows.append({"call": what, "seconds": round(s, 4), "cpu_seconds": round(cpu, 4), **info})
    extra = "".join(f" {k}={v}" for k, v in info.items())
    # CPU seconds too: on a shared machine they vary less than wall time
    print(f"  {what:<44} {s:8.3f} s wall {cpu:8.3f} s cpu{extra}", file=sys.stderr, flush=True)
    return out


def run(
    nodes: int, apps: int, *, seed: int = 0, policies: tuple[str, ...] = POLICIES
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    doc = _timed(rows, "generate_cluster", lambda: generate_cluster(nodes, apps, seed=seed))
    inst = _timed(rows, "build_instance", lambda: instance_of(doc))
    plans: dict[str, Plan] = {}
    for policy in policies:
        res = _timed(
            rows, f"make_plan greedy {policy}", lambda p=policy: make_plan(inst, method="greedy", policy=p)
        )
        if res.plan is not None:
            plans[policy] = res.plan
        rows[-1]["status"] = res.status.value
    first = inst.nodes[0]
    domain = [n.id for n in inst.nodes if n.domain is not None and n.domain == first.domain] or [first.id]
    for policy, plan in plans.items():
        if policy not in ("faillite", "faillite-shared"):
            continue
        for label, failed in (("node", [first.id]), ("domain", domain)):
            _timed(
                rows,
                f"replan protect=False {policy} {label}",
                lambda f=failed, p=plan, pol=policy: replan(inst, p, f, policy=pol, protect=False),
            )
            rr = _timed(
                rows,
                f"replan protect=True {policy} {label}",
                lambda f=failed, p=plan, pol=policy: replan(inst, p, f, policy=pol, protect=True),
            )
            if rr.protection.plan is None:
                continue
            home = {a.name: a.primary_variant for a in inst.apps}
            lowered = [a.name for a in rr.instance.apps if a.primary_variant != home[a.name]]
            _timed(
                rows,
                f"settle {policy} {label}",
                lambda r=rr, low=lowered, pol=policy, h=home: settle(
                    r.instance, r.protection.plan, h, low, policy=pol
                ),
                climbing=len(lowered),
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faillite.sim.planbench", description=__doc__)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--apps", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policy", action="append", choices=POLICIES, help="repeatable; default: all")
    ap.add_argument("--json", type=Path, help="write the timings here")
    args = ap.parse_args(argv)
    print(f"planner at {args.nodes} nodes x {args.apps} apps (seed {args.seed}):", file=sys.stderr)
    rows = run(args.nodes, args.apps, seed=args.seed, policies=tuple(args.policy or POLICIES))
    if args.json:
        args.json.write_text(json.dumps({"nodes": args.nodes, "apps": args.apps, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
