"""An independent plan checker: reads the ``faillite plan --json`` document, nothing else.

It shares no code with ``faillite.placement`` (it must not import it): it re-derives every
rule from the documented format (docs/planner.md) so that a bug in the solvers' shared code
cannot hide from it. Shared warm fallbacks (policy faillite-shared) are checked too: memory
once per node and variant, never beside a served app's primary (or in its failure domain),
the same fallback key as each app served, the SLO, and their compute after each failure.
``check(doc)`` returns the violations (empty when the plan is valid) and
the plan's objective as recomputed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckReport", "check"]

_TOP_KEYS = ("method", "policy", "objective", "solve_seconds", "nodes", "apps")
_PLACE_KEYS = ("node", "variant", "memory_bytes", "accuracy")


@dataclass
class CheckReport:
    violations: list[str] = field(default_factory=list)
    objective: float = 0.0  # sum of weight x backup accuracy
    recovery_ms: float = 0.0  # sum of expected recovery over protected apps
    backup_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


def _structure(doc: dict[str, Any], out: list[str]) -> bool:
    for k in _TOP_KEYS:
        if k not in doc:
            out.append(f"missing key {k!r}")
    for n in doc.get("nodes", []):
        for k in ("id", "memory_bytes", "domain"):
            if k not in n:
                out.append(f"node {n.get('id')!r}: missing key {k!r}")
    for a in doc.get("apps", []):
        for k in ("name", "family", "primary", "backup"):
            if k not in a:
                out.append(f"app {a.get('name')!r}: missing key {k!r}")
        prim = a.get("primary")
        if not isinstance(prim, dict) or any(k not in prim for k in _PLACE_KEYS):
            out.append(f"app {a.get('name')!r}: primary must have {', '.join(_PLACE_KEYS)}")
        b = a.get("backup")
        if b is not None and (
            not isinstance(b, dict) or any(k not in b for k in (*_PLACE_KEYS, "mode", "expected_recovery_ms"))
        ):
            out.append(
                f"app {a.get('name')!r}: backup must be null or have node, variant, memory_bytes, "
                "accuracy, mode, expected_recovery_ms"
            )
        elif b is not None and b["mode"] not in ("warm", "cold"):
            out.append(f"app {a.get('name')!r}: backup mode {b['mode']!r} is neither warm nor cold")
    return not out


def check(doc: dict[str, Any], *, tolerance: float = 1e-6) -> CheckReport:
    """Check a plan document against the instance it carries."""
    rep = CheckReport()
    out = rep.violations
    if not _structure(doc, out):
        return rep
    policy = doc["policy"]
    best_effort = bool(doc.get("best_effort", False))
    params = doc.get("params", {})
    detection = float(params.get("detection_ms", 50.0))
    switch = float(params.get("switch_ms", 5.0))
    use_domains = bool(params.get("use_domains", True))
    nodes = {n["id"]: n for n in doc["nodes"]}
    fams = {name: {v["variant"]: v for v in vs} for name, vs in doc.get("families", {}).items()}
    full = bool(fams)
    # faillite-shared protects an app by its own backup or by a shared warm fallback
    shared_apps = {a for sf in doc.get("shared") or [] if isinstance(sf, dict) for a in sf.get("apps") or []}

    def variant(app: dict[str, Any], name: str) -> dict[str, Any] | None:
        v = fams.get(app["family"], {}).get(name)
        if v is None and full:
            out.append(f"app {app['name']}: family {app['family']} has no variant {name!r}")
        return v

    def together(x: str, y: str) -> bool:
        if x == y:
            return True
        dx, dy = nodes[x].get("domain"), nodes[y].get("domain")
        return use_domains and dx is not None and dx == dy

    def speed(node_id: str) -> float:
        return float(nodes[node_id].get("speed", 1.0))

    def demand(app: dict[str, Any], v: dict[str, Any], node_id: str) -> int:
        return math.ceil(float(app.get("request_rate", 0.0)) * float(v["service_ms"]) / speed(node_id))

    # per-node accounting
    base = dict.fromkeys(nodes, 0)  # primaries + warm backups, bytes
    mc = dict.fromkeys(nodes, 0)  # primaries' compute, millicores
    failover: list[tuple[str, str, int, str, int]] = []  # (primary node, backup node, bytes, mode, mc)
    for app in doc["apps"]:
        name = app["name"]
        prim, b = app["primary"], app["backup"]
        if prim["node"] not in nodes:
            out.append(f"app {name}: primary on unknown node {prim['node']!r}")
            continue
        given = app.get("given_primary")
        if given and (given["node"] != prim["node"] or given["variant"] != prim["variant"]):
            out.append(f"app {name}: primary moved from the given {given['node']}/{given['variant']}")
        pv = variant(app, prim["variant"])
        if pv is not None:
            if (
                pv["memory_bytes"] != prim["memory_bytes"]
                or abs(pv["accuracy"] - prim["accuracy"]) > tolerance
            ):
                out.append(f"app {name}: primary memory/accuracy do not match the family's profile")
            if pv["latency_ms"] / speed(prim["node"]) > app["slo_ms"]:
                out.append(f"app {name}: primary misses its SLO on {prim['node']}")
            mc[prim["node"]] += demand(app, pv, prim["node"])
        base[prim["node"]] += prim["memory_bytes"]
        if b is None:
            if policy == "faillite" and not best_effort:
                out.append(f"app {name}: no backup (policy faillite protects every app)")
            elif policy == "faillite-shared" and not best_effort and name not in shared_apps:
                out.append(
                    f"app {name}: neither a backup nor a shared fallback (policy {policy} protects every app)"
                )
            continue
        if policy == "none":
            out.append(f"app {name}: policy none plans no backups")
        if b["node"] not in nodes:
            out.append(f"app {name}: backup on unknown node {b['node']!r}")
            continue
        if together(b["node"], prim["node"]):
            out.append(f"app {name}: backup on {b['node']} fails together with its primary on {prim['node']}")
        if policy in ("full-warm", "full-cold") and b["variant"] != prim["variant"]:
            out.append(f"app {name}: policy {policy} keeps the primary's variant")
        if policy in ("full-warm", "hetero-warm-only") and b["mode"] != "warm":
            out.append(f"app {name}: policy {policy} allows warm backups only")
        if policy == "full-cold" and b["mode"] != "cold":
            out.append(f"app {name}: policy full-cold allows cold backups only")
        if b["memory_bytes"] > prim["memory_bytes"] or b["accuracy"] > prim["accuracy"]:
            out.append(f"app {name}: backup larger or more accurate than its primary")
        v = variant(app, b["variant"])
        rt = detection + switch
        if v is not None:
            if v["memory_bytes"] != b["memory_bytes"] or abs(v["accuracy"] - b["accuracy"]) > tolerance:
                out.append(f"app {name}: backup memory/accuracy do not match the family's profile")
            if v["latency_ms"] / speed(b["node"]) > app["slo_ms"]:
                out.append(
                    f"app {name}: backup {b['variant']} misses the SLO {app['slo_ms']} ms on {b['node']}"
                )
            if b["mode"] == "cold":
                rt = detection + v["load_ms"] + v["first_infer_ms"] / speed(b["node"])
            if abs(rt - b["expected_recovery_ms"]) > 1e-3 + tolerance * rt:
                out.append(f"app {name}: expected_recovery_ms {b['expected_recovery_ms']} should be {rt:.3f}")
        if policy in ("faillite", "faillite-shared", "hetero-warm-only"):
            if app.get("critical") and b["mode"] != "warm":
                out.append(f"app {name}: critical, so its backup must be warm")
            limit = app.get("max_recovery_ms")
            if limit is not None and rt > limit:
                out.append(f"app {name}: {b['mode']} recovery {rt:.1f} ms exceeds max_recovery_ms {limit}")
        if b["mode"] == "warm":
            base[b["node"]] += b["memory_bytes"]
        failover.append(
            (
                prim["node"],
                b["node"],
                b["memory_bytes"],
                b["mode"],
                demand(app, v, b["node"]) if v is not None else 0,
            )
        )
        rep.objective += float(app.get("weight", 1.0)) * b["accuracy"]
        rep.recovery_ms += rt
        rep.backup_bytes += b["memory_bytes"]

    shared_mc = _shared(doc, nodes, fams, together, speed, base, out)
    for nid, n in nodes.items():
        if base[nid] > n["memory_bytes"]:
            out.append(
                f"node {nid}: {base[nid]} bytes of primaries and warm backups, budget {n['memory_bytes']}"
            )
        if full and mc[nid] > round(float(n.get("cores", 1.0)) * 1000):
            out.append(f"node {nid}: primaries need {mc[nid]} millicores, capacity {n.get('cores')} cores")
    # failure scenarios: each node, and each failure domain
    scenarios = [{nid} for nid in nodes]
    if use_domains:
        domains: dict[str, set[str]] = {}
        for nid, n in nodes.items():
            if n.get("domain") is not None:
                domains.setdefault(n["domain"], set()).add(nid)
        scenarios += [s for s in domains.values() if len(s) > 1]
    for failed in scenarios:
        extra_mem = dict.fromkeys(nodes, 0)
        extra_mc = dict.fromkeys(nodes, 0)
        for p, n, need in shared_mc:
            if p in failed:
                extra_mc[n] += need
        for p, n, mem, mode, need in failover:
            if p in failed:
                if n in failed:
                    out.append(f"backup on {n} fails together with its primary on {p}")
                if mode == "cold":
                    extra_mem[n] += mem
                extra_mc[n] += need
        for nid, n in nodes.items():
            if nid in failed:
                continue
            if base[nid] + extra_mem[nid] > n["memory_bytes"]:
                out.append(
                    f"node {nid}: {base[nid] + extra_mem[nid]} bytes after a failure of "
                    f"{'+'.join(sorted(failed))}, budget {n['memory_bytes']}"
                )
            if full and mc[nid] + extra_mc[nid] > round(float(n.get("cores", 1.0)) * 1000):
                out.append(f"node {nid}: compute overcommitted after a failure of {'+'.join(sorted(failed))}")
    claimed = doc.get("objective")
    if claimed is not None and abs(claimed - rep.objective) > tolerance * max(1, len(doc["apps"])):
        out.append(f"objective {claimed} does not match the recomputed {rep.objective}")
    return rep


def _shared(
    doc: dict[str, Any],
    nodes: dict[str, Any],
    fams: dict[str, dict[str, Any]],
    together: Callable[[str, str], bool],
    speed: Callable[[str], float],
    base: dict[str, int],
    out: list[str],
) -> list[tuple[str, str, int]]:
    """Check the shared warm fallbacks; add their memory to ``base`` (once per node and variant).

    Returns (primary node, fallback node, millicores) per served app, for the failure scenarios.
    """
    shared = doc.get("shared") or []
    if shared and doc["policy"] != "faillite-shared":
        out.append(f"policy {doc['policy']} plans no shared fallbacks")
    keys = doc.get("fallback_keys") or {}
    apps = {a["name"]: a for a in doc["apps"]}
    served_by: dict[str, tuple[str, str]] = {}
    counted: set[tuple[str, str]] = set()
    demand: list[tuple[str, str, int]] = []
    for sf in shared:
        where = f"shared fallback {sf.get('variant')!r} on {sf.get('node')!r}"
        if any(k not in sf for k in ("node", "family", "variant", "memory_bytes", "apps")):
            out.append(f"{where}: must have node, family, variant, memory_bytes, apps")
            continue
        if sf["node"] not in nodes:
            out.append(f"{where}: unknown node (or not live)")
            continue
        key = keys.get(sf["family"])
        if key is None:
            out.append(f"{where}: family {sf['family']!r} has no fallback key")
        v = fams.get(sf["family"], {}).get(sf["variant"])
        if fams and v is None:
            out.append(f"{where}: family {sf['family']} has no such variant")
        if v is not None and v["memory_bytes"] != sf["memory_bytes"]:
            out.append(f"{where}: memory does not match the family's profile")
        if (sf["node"], sf["variant"]) not in counted:  # one loaded model, however many apps
            counted.add((sf["node"], sf["variant"]))
            base[sf["node"]] += sf["memory_bytes"]
        if not sf["apps"]:
            out.append(f"{where}: serves no app")
        for name in sf["apps"]:
            app = apps.get(name)
            if app is None:
                out.append(f"{where}: unknown app {name!r}")
                continue
            if name in served_by:
                out.append(f"app {name}: two shared fallbacks")
            served_by[name] = (sf["node"], sf["variant"])
            if key is None or keys.get(app["family"]) != key:
                out.append(f"app {name}: {where} is of another task/signature (key {key!r})")
            prim = app["primary"]["node"]
            if prim in nodes and together(prim, sf["node"]):
                out.append(f"app {name}: {where} fails together with its primary on {prim}")
            b = app.get("backup")
            if b is not None and b.get("mode") == "warm":
                out.append(f"app {name}: has a warm backup, yet takes a shared fallback")
            if v is None:
                continue
            if v["latency_ms"] / speed(sf["node"]) > app["slo_ms"]:
                out.append(f"app {name}: {where} misses the SLO {app['slo_ms']} ms")
            rate = float(app.get("request_rate", 0.0))
            demand.append((prim, sf["node"], math.ceil(rate * float(v["service_ms"]) / speed(sf["node"]))))
    for name, app in apps.items():
        claimed = app.get("shared_fallback")
        if claimed is not None and served_by.get(name) != (claimed.get("node"), claimed.get("variant")):
            out.append(f"app {name}: shared_fallback does not match the plan's shared list")
        if claimed is None and name in served_by and "shared_fallback" in app:
            out.append(f"app {name}: served by a shared fallback the app entry does not name")
    return demand
