"""What the solvers share: per-app options, static candidate filters and the plan score.

A *candidate* is one complete choice for one app: its primary node and its backup (node,
variant, mode), or no backup. Static filters are those that do not depend on the other apps:
anti-affinity, latency SLO, recovery-time rule, and "fits at all" (memory and compute of the
node, counting primaries that are already fixed there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from faillite.placement.model import (
    ACCURACY_SCALE,
    WEIGHT_SCALE,
    App,
    Assignment,
    Backup,
    Instance,
    Mode,
    Node,
    Plan,
    PlanningError,
    Score,
    Variant,
)
from faillite.placement.policies import PolicyRules
from faillite.placement.scenarios import Scenario, failure_scenarios

__all__ = ["Candidate", "Context", "candidate_score", "check_known", "plan_score"]

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Candidate:
    app: int  # index into ctx.apps
    primary: int  # node index
    backup: int | None  # node index, None: no backup
    variant: Variant | None
    mode: Mode | None
    acc: int  # W x A, integer-scaled
    rt_ms: int  # expected recovery, whole ms (0 without backup)
    mem_mib: int  # backup memory, whole MiB
    mem: int  # backup memory, bytes
    demand_mc: int  # compute the backup needs on its node after a failover


def candidate_score(
    app: App, variant: Variant | None, mode: Mode | None, node: Node | None, inst: Instance
) -> tuple[int, int, int]:
    """(W x A, recovery ms, MiB) of one backup choice; (0, 0, 0) without one."""
    if variant is None or mode is None or node is None:
        return 0, 0, 0
    acc = round(app.weight * WEIGHT_SCALE) * round(variant.accuracy * ACCURACY_SCALE)
    rt = inst.params.warm_recovery_ms() if mode is Mode.WARM else inst.params.cold_recovery_ms(variant, node)
    return acc, round(rt), round(variant.memory_bytes / MIB)


def plan_score(inst: Instance, plan: Plan) -> Score:
    acc = rt = mib = 0
    for asg in plan:
        app = inst.app(asg.app)
        b = asg.backup
        if b is None:
            continue
        a, r, m = candidate_score(app, inst.variant(app.family, b.variant), b.mode, inst.node(b.node), inst)
        acc, rt, mib = acc + a, rt + r, mib + m
    return Score(acc, -rt, -mib)


class Context:
    """Indexes over one instance under one policy's rules."""

    def __init__(self, inst: Instance, rules: PolicyRules, keep: Mapping[str, Backup] | None = None) -> None:
        self.inst = inst
        self.rules = rules
        self.keep = dict(keep or {})
        self.nodes = inst.nodes
        self.apps = inst.apps
        self.node_index = {n.id: i for i, n in enumerate(inst.nodes)}
        self.scenarios: tuple[Scenario, ...] = failure_scenarios(
            inst.nodes, use_domains=inst.params.use_domains
        )
        # scenarios (indexes) in which node i fails
        self.scenarios_of: list[list[int]] = [[] for _ in inst.nodes]
        for s, sc in enumerate(self.scenarios):
            for nid in sc.failed:
                self.scenarios_of[self.node_index[nid]].append(s)
        # nodes that fail together share a group: a backup must be in another group than its primary
        use_domains = inst.params.use_domains
        domains: dict[str, int] = {}
        self.group: list[int] = [
            -1 - k if not use_domains or n.domain is None else domains.setdefault(n.domain, len(domains))
            for k, n in enumerate(inst.nodes)
        ]
        self._kept: dict[tuple[int, int], Candidate | None] = {}
        self.primary_variant: list[Variant] = [inst.variant(a.family, a.primary_variant) for a in inst.apps]
        self.weight_int = [round(a.weight * WEIGHT_SCALE) for a in inst.apps]
        allowed: dict[tuple[str, str], tuple[Variant, ...]] = {}  # apps of one family and variant alike
        self.allowed: list[tuple[Variant, ...]] = [
            allowed[a.family, a.primary_variant]
            if (a.family, a.primary_variant) in allowed
            else allowed.setdefault((a.family, a.primary_variant), self._allowed_variants(i))
            for i, a in enumerate(inst.apps)
        ]
        self._option_cache: dict[tuple[int, float, bool], list[Candidate]] = {}
        # primaries that are given, and what they use
        self.fixed_mem = [0] * len(inst.nodes)
        self.fixed_mc = [0] * len(inst.nodes)
        for i, a in enumerate(inst.apps):
            if a.primary_node is not None:
                n = self.node_index[a.primary_node]
                self.fixed_mem[n] += self.primary_variant[i].memory_bytes
                self.fixed_mc[n] += self.primary_variant[i].demand_mc(a.request_rate, inst.nodes[n])

    def _allowed_variants(self, i: int) -> tuple[Variant, ...]:
        if not self.rules.backups:
            return ()
        pv = self.primary_variant[i]
        if self.rules.same_variant:
            return (pv,)
        fam = self.inst.family(self.apps[i].family)
        return tuple(
            v for v in fam.variants if v.memory_bytes <= pv.memory_bytes and v.accuracy <= pv.accuracy
        )

    # --- primaries -------------------------------------------------------------------------

    def primary_ok(self, i: int, n: int) -> bool:
        app, node, v = self.apps[i], self.nodes[n], self.primary_variant[i]
        return (
            v.latency_on(node) <= app.slo_ms
            and self.fixed_mem[n] + v.memory_bytes <= node.memory_bytes
            and self.fixed_mc[n] + v.demand_mc(app.request_rate, node) <= node.capacity_mc
        )

    def primary_nodes(self, i: int) -> list[int]:
        given = self.apps[i].primary_node
        if given is not None:
            return [self.node_index[given]]
        return [n for n in range(len(self.nodes)) if self.primary_ok(i, n)]

    # --- backups ---------------------------------------------------------------------------

    def modes_for(self, i: int, v: Variant, node: Node) -> list[Mode]:
        """Modes allowed for variant ``v`` on ``node``, by policy and the recovery-time rule."""
        app, params = self.apps[i], self.inst.params
        out = []
        for mode in (Mode.WARM, Mode.COLD):
            if mode not in self.rules.modes:
                continue
            if self.rules.honour_recovery:
                if mode is Mode.COLD and app.critical:
                    continue
                rt = params.warm_recovery_ms() if mode is Mode.WARM else params.cold_recovery_ms(v, node)
                if app.max_recovery_ms is not None and rt > app.max_recovery_ms:
                    continue
            out.append(mode)
        return out

    def backup_node_ok(self, p: int, n: int) -> bool:
        return self.group[p] != self.group[n]  # scenarios.same_domain, precomputed

    def backup_fits_alone(self, i: int, p: int, n: int, v: Variant) -> bool:
        """Latency SLO and "fits at all" on node ``n``, counting the fixed primaries there."""
        app, node = self.apps[i], self.nodes[n]
        if v.latency_on(node) > app.slo_ms:
            return False
        if self.fixed_mem[n] + v.memory_bytes > node.memory_bytes:
            return False
        return self.fixed_mc[n] + v.demand_mc(app.request_rate, node) <= node.capacity_mc

    def candidates(self, i: int, p: int, *, prune: bool = True) -> list[Candidate]:
        """Backup candidates of app ``i`` with its primary on node ``p`` (dominated ones pruned)."""
        kept = self.kept_candidate(i, p)
        if kept is not None:
            return [kept]
        out: list[Candidate] = []
        fixed_mem, fixed_mc = self.fixed_mem, self.fixed_mc
        for n, node in enumerate(self.nodes):
            if not self.backup_node_ok(p, n):
                continue
            mem_left, mc_left = node.memory_bytes - fixed_mem[n], node.capacity_mc - fixed_mc[n]
            for c in self._options(i, node.speed, prune):
                if c.mem <= mem_left and c.demand_mc <= mc_left:
                    out.append(
                        Candidate(i, p, n, c.variant, c.mode, c.acc, c.rt_ms, c.mem_mib, c.mem, c.demand_mc)
                    )
        return out

    def _options(self, i: int, speed: float, prune: bool) -> list[Candidate]:
        """App ``i``'s backup options on a node of this speed (SLO met), warm then cold,
        undominated within each mode when ``prune``. Node and primary fields are placeholders.

        Filtering these by "fits in the node" afterwards gives the same set as pruning the
        fitting ones: a dominator needs no more memory and compute, so it fits too.
        """
        key = (i, speed, prune)
        cached = self._option_cache.get(key)
        if cached is not None:
            return cached
        app, node = self.apps[i], Node("-", 0, speed=speed)
        out: list[Candidate] = []
        for mode in (Mode.WARM, Mode.COLD):
            group = []
            for v in self.allowed[i]:
                if v.latency_on(node) > app.slo_ms or mode not in self.modes_for(i, v, node):
                    continue
                acc, rt, mib = candidate_score(app, v, mode, node, self.inst)
                group.append(
                    Candidate(
                        i, -1, -1, v, mode, acc, rt, mib, v.memory_bytes, v.demand_mc(app.request_rate, node)
                    )
                )
            out.extend(_undominated(group) if prune else group)
        self._option_cache[key] = out
        return out

    def make(self, i: int, p: int, n: int, v: Variant, mode: Mode) -> Candidate:
        app, node = self.apps[i], self.nodes[n]
        acc, rt, mib = candidate_score(app, v, mode, node, self.inst)
        return Candidate(i, p, n, v, mode, acc, rt, mib, v.memory_bytes, v.demand_mc(app.request_rate, node))

    def kept_candidate(self, i: int, p: int) -> Candidate | None:
        """The backup to keep for app ``i`` (re-planning), when it is still on a usable node."""
        if not self.keep:
            return None
        key = (i, p)
        if key in self._kept:
            return self._kept[key]
        b = self.keep.get(self.apps[i].name)
        out = None
        if b is not None and b.node in self.node_index:
            n = self.node_index[b.node]
            if self.backup_node_ok(p, n):
                out = self.make(i, p, n, self.inst.variant(self.apps[i].family, b.variant), b.mode)
        self._kept[key] = out
        return out

    def has_candidate(self, i: int, p: int) -> bool:
        """Whether app i, with its primary on p, has any backup candidate (cheap, early exit)."""
        if self.kept_candidate(i, p) is not None:
            return True
        for n, node in enumerate(self.nodes):
            if self.backup_node_ok(p, n):
                for v in self.allowed[i]:
                    if self.backup_fits_alone(i, p, n, v) and self.modes_for(i, v, node):
                        return True
        return False

    def no_backup(self, i: int, p: int) -> Candidate:
        return Candidate(i, p, None, None, None, 0, 0, 0, 0, 0)

    def assignment(self, c: Candidate) -> Assignment:
        app = self.apps[c.app]
        backup = None
        if c.backup is not None and c.variant is not None and c.mode is not None:
            kept = self.keep.get(app.name)  # the kept backup itself when it is this one
            node_id = self.nodes[c.backup].id
            if kept is not None and (kept.node, kept.variant, kept.mode) == (node_id, c.variant.name, c.mode):
                backup = kept
            else:
                backup = Backup(node_id, c.variant.name, c.mode)
        return Assignment(app.name, self.nodes[c.primary].id, app.primary_variant, backup)


def _undominated(cands: list[Candidate]) -> list[Candidate]:
    """Drop candidates that another one of the same app, node and mode beats on every count.

    Swapping a dominated candidate for its dominator keeps any plan feasible (no more memory,
    no more compute) and its score no worse, so the optimum is unchanged.
    """
    ordered = sorted(
        cands,
        key=lambda c: (-c.acc, c.rt_ms, c.mem, c.demand_mc, c.mem_mib, c.variant.name if c.variant else ""),
    )
    kept: list[Candidate] = []
    for c in ordered:
        if not any(
            k.acc >= c.acc
            and k.rt_ms <= c.rt_ms
            and k.mem <= c.mem
            and k.mem_mib <= c.mem_mib
            and k.demand_mc <= c.demand_mc
            for k in kept
        ):
            kept.append(c)
    return kept


def check_known(inst: Instance, plan: Plan) -> None:
    """Raise PlanningError when a plan names apps, nodes or variants the instance lacks."""
    names = {a.name for a in inst.apps}
    for asg in plan:
        if asg.app not in names:
            raise PlanningError(f"plan names unknown app {asg.app!r}")
        inst.node(asg.primary_node)
        if asg.backup is not None:
            inst.node(asg.backup.node)
            inst.variant(inst.app(asg.app).family, asg.backup.variant)
