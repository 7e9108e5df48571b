"""Shared warm fallbacks' bookkeeping: the room each node has (``Room``) and the search for the
next fallback to place (``next_fallback``), indexed so it stays fast with thousands of apps.

The search is the one ``faillite.placement.shared`` documents: over the candidate nodes (pool)
and the key's variants, the (node, variant) that serves the most still-uncovered apps and fits,
then the most accurate within ``accuracy_slack``, then the least memory, most memory free,
node id, variant name. A naive search lists the apps each (node, variant) reaches: pool x
variants x apps. Here the apps a variant reaches on nodes of one speed are listed once (SLO and
size cap do not depend on the node), and a node reaches those of them outside its own failure
group (domain, or the node alone): a count per group gives each node's number. Compute needs
are sums per failure scenario, and every scenario lies in one group, so a node's worst need is
the largest sum outside its group.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from faillite.placement.model import App, Instance, Mode, Node, Plan, Variant

__all__ = ["Room", "next_fallback", "node_groups", "room_of"]


@dataclass
class Room:
    """Memory and compute the plan uses on each node, per failure scenario."""

    inst: Instance
    base: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # primaries + warm + fallbacks
    peak: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # worst cold reservation
    mc: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # primaries' compute
    after: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    loaded: set[tuple[str, str]] = field(default_factory=set)  # fallbacks placed: (node, variant)
    scenarios_of: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # node -> s

    def free(self, n: Node) -> int:
        return n.memory_bytes - self.base[n.id] - self.peak[n.id]

    def fits(self, n: Node, v: Variant, apps: Sequence[App], scenarios: Sequence[frozenset[str]]) -> bool:
        extra = 0 if (n.id, v.name) in self.loaded else v.memory_bytes
        if self.free(n) < extra:
            return False
        cap, mc, after = n.capacity_mc, self.mc[n.id], self.after[n.id]
        return all(mc + after[s] + need <= cap for s, need in self._needs(n, v, apps, scenarios).items())

    def take(self, n: Node, v: Variant, apps: Sequence[App], scenarios: Sequence[frozenset[str]]) -> None:
        if (n.id, v.name) not in self.loaded:
            self.base[n.id] += v.memory_bytes
            self.loaded.add((n.id, v.name))
        after = self.after[n.id]
        for s, need in self._needs(n, v, apps, scenarios).items():
            after[s] += need

    def _needs(
        self, n: Node, v: Variant, apps: Sequence[App], scenarios: Sequence[frozenset[str]]
    ) -> dict[int, int]:
        """Compute the fallback on ``n`` needs after each scenario that fails some of ``apps``
        (only those: the others need nothing of it)."""
        out: dict[int, int] = defaultdict(int)
        for a in apps:
            need = v.demand_mc(a.request_rate, n)
            if need:
                for s in self.scenarios_of[a.primary_node or ""]:
                    if n.id not in scenarios[s]:
                        out[s] += need
        return out


def room_of(inst: Instance, plan: Plan, scenarios: Sequence[frozenset[str]]) -> Room:
    room = Room(inst)
    for s, failed in enumerate(scenarios):
        for node in failed:
            room.scenarios_of[node].append(s)
    cold: dict[tuple[str, int], int] = defaultdict(int)
    for asg in plan:
        app = inst.app(asg.app)
        pv = inst.variant(app.family, asg.primary_variant)
        p = inst.node(asg.primary_node)
        room.base[p.id] += pv.memory_bytes
        room.mc[p.id] += pv.demand_mc(app.request_rate, p)
        b = asg.backup
        if b is None:
            continue
        n, v = inst.node(b.node), inst.variant(app.family, b.variant)
        if b.mode is Mode.WARM:
            room.base[n.id] += v.memory_bytes
        for s in room.scenarios_of[p.id]:  # the scenarios that fail the primary
            if n.id not in scenarios[s]:
                room.after[n.id][s] += v.demand_mc(app.request_rate, n)
                if b.mode is Mode.COLD:
                    cold[n.id, s] += v.memory_bytes
    for (n_id, _), mem in cold.items():
        room.peak[n_id] = max(room.peak[n_id], mem)
    return room


def node_groups(inst: Instance) -> dict[str, int]:
    """Node -> failure group: nodes that fail together (``scenarios.same_domain``) share one."""
    domains: dict[str, int] = {}
    use = inst.params.use_domains
    return {
        n.id: -1 - k if not use or n.domain is None else domains.setdefault(n.domain, len(domains))
        for k, n in enumerate(inst.nodes)
    }


@dataclass
class _Reach:
    """The todo apps one variant reaches on nodes of one speed, whatever the node's group."""

    apps: list[App]  # by name
    per_group: Counter[int]  # how many of them have their primary in each group
    need: list[tuple[int, int, int]]  # (compute need, scenario, its group), largest first
    need_of: dict[int, int]  # scenario -> compute need (positive ones only)


def next_fallback(
    room: Room,
    pool: Sequence[Node],
    variants: Sequence[tuple[str, Variant]],
    todo: Collection[str],
    placed: Mapping[str, App],
    cap: Mapping[str, int],
    group: Mapping[str, int],
    scenario_group: Sequence[int],
    accuracy_slack: float,
) -> tuple[Node, str, Variant, list[App]] | None:
    """The next fallback (node, family, variant, apps it serves by name), or None when no
    (node, variant) of the pool serves any app of ``todo`` and fits."""
    apps = sorted((placed[a] for a in todo), key=lambda a: a.name)
    reach: dict[tuple[int, float], _Reach] = {}
    options = []
    for n in pool:
        g, free, cap_mc, mc = group[n.id], room.free(n), n.capacity_mc, room.mc[n.id]
        after = room.after[n.id]
        for k, (fam, v) in enumerate(variants):
            r = reach.get((k, n.speed))
            if r is None:
                r = reach[k, n.speed] = _reach_of(room, v, n, apps, cap, group, scenario_group)
            count = len(r.apps) - r.per_group[g]
            if count <= 0:
                continue
            if free < (0 if (n.id, v.name) in room.loaded else v.memory_bytes):
                continue
            # compute: after every scenario outside the node's group that fails a served app
            worst = next((need for need, _, sg in r.need if sg != g), 0)
            if mc + worst > cap_mc:
                continue
            need_of = r.need_of
            if any(
                mc + used + need_of[s] > cap_mc
                for s, used in after.items()
                if s in need_of and scenario_group[s] != g
            ):
                continue
            options.append((count, v.accuracy, n, fam, v, r))
    if not options:
        return None
    most = max(o[0] for o in options)
    options = [o for o in options if o[0] == most]
    best_acc = max(o[1] for o in options)
    options = [o for o in options if o[1] >= best_acc - accuracy_slack]
    _, _, n, fam, v, r = min(
        options, key=lambda o: (o[4].memory_bytes, -o[1], -room.free(o[2]), o[2].id, o[4].name)
    )
    g = group[n.id]
    return n, fam, v, [a for a in r.apps if group[a.primary_node or ""] != g]


def _reach_of(
    room: Room,
    v: Variant,
    n: Node,
    apps: Sequence[App],
    cap: Mapping[str, int],
    group: Mapping[str, int],
    scenario_group: Sequence[int],
) -> _Reach:
    lat = v.latency_on(n)
    mem = v.memory_bytes
    mine = [a for a in apps if lat <= a.slo_ms and mem <= cap[a.name]]
    need: dict[int, int] = defaultdict(int)
    for a in mine:
        d = v.demand_mc(a.request_rate, n)  # depends on the node's speed only
        if d:
            # a served app's scenarios never hold the node (it is outside the app's group)
            for s in room.scenarios_of[a.primary_node or ""]:
                need[s] += d
    ranked = sorted(((x, s, scenario_group[s]) for s, x in need.items()), reverse=True)
    return _Reach(mine, Counter(group[a.primary_node or ""] for a in mine), ranked, dict(need))
