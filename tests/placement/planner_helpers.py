"""Test helpers for the planner: tiny instances, a brute-force solver built on the checker.

The brute force shares nothing with the solvers: it enumerates every plan as a document and
keeps the best one that ``faillite.plancheck`` accepts.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from faillite.placement import App, Family, Instance, Node, PlannerParams, Variant, instance_document
from faillite.plancheck import check

MIB = 1 << 20


def variant(family: str, name: str, acc: float, mib: int, load: float = 100.0, lat: float = 10.0) -> Variant:
    return Variant(family, name, acc, mib * MIB, load, lat, lat, lat / 2)


def ladder(family: str = "F") -> Family:
    return Family(
        family,
        (
            variant(family, f"{family}-s", 0.70, 10, load=20.0),
            variant(family, f"{family}-m", 0.75, 30, load=80.0),
            variant(family, f"{family}-l", 0.80, 60, load=300.0),
        ),
    )


def instance(
    nodes: list[Node],
    apps: list[App],
    families: list[Family] | None = None,
    params: PlannerParams | None = None,
) -> Instance:
    return Instance(tuple(nodes), tuple(families or [ladder()]), tuple(apps), params or PlannerParams())


def brute_force(inst: Instance, policy: str = "faillite") -> tuple[float, dict[str, Any] | None]:
    """The best objective over every plan the checker accepts, and that plan (None: no valid plan)."""
    base = instance_document(inst)
    base.update({"method": "brute", "policy": policy, "objective": None, "solve_seconds": 0.0})
    fams = base["families"]
    nodes = [n["id"] for n in base["nodes"]]
    per_app = []
    for app in base["apps"]:
        given = app["given_primary"]
        prim_nodes = [given["node"]] if given else nodes
        pv_name = given["variant"] if given else None
        if pv_name is None:  # Instance always has a primary variant; take it from the instance
            pv_name = inst.app(app["name"]).primary_variant
        pv = next(v for v in fams[app["family"]] if v["variant"] == pv_name)
        options = []
        for p in prim_nodes:
            prim = {
                "node": p,
                "variant": pv["variant"],
                "memory_bytes": pv["memory_bytes"],
                "accuracy": pv["accuracy"],
            }
            options.append((prim, None))
            for n in nodes:
                if n == p:
                    continue
                for v in fams[app["family"]]:
                    for mode in ("warm", "cold"):
                        options.append(
                            (
                                prim,
                                {
                                    "node": n,
                                    "variant": v["variant"],
                                    "memory_bytes": v["memory_bytes"],
                                    "accuracy": v["accuracy"],
                                    "mode": mode,
                                    "expected_recovery_ms": None,
                                },
                            )
                        )
        per_app.append(options)
    best: tuple[float, dict[str, Any] | None] = (float("-inf"), None)
    for combo in itertools.product(*per_app):
        doc = copy.deepcopy(base)
        for app, (prim, backup) in zip(doc["apps"], combo, strict=True):
            app["primary"] = prim
            app["backup"] = None if backup is None else dict(backup)
            if backup is not None:
                v = next(x for x in fams[app["family"]] if x["variant"] == backup["variant"])
                speed = next(n.get("speed", 1.0) for n in doc["nodes"] if n["id"] == backup["node"])
                p = doc["params"]
                app["backup"]["expected_recovery_ms"] = (
                    p["detection_ms"] + p["switch_ms"]
                    if backup["mode"] == "warm"
                    else p["detection_ms"] + v["load_ms"] + v["first_infer_ms"] / speed
                )
        report = check(doc)
        if report.ok and report.objective > best[0] + 1e-12:
            best = (report.objective, doc)
    return best
