"""The greedy planner: cover every app cheaply, then climb, then trade memory between apps.

1. Primaries not given are placed first: largest first, on the node with the most free memory
   that meets the SLO and has the compute.
2. Coverage: apps in order of difficulty (warm-only first, then the largest) get their
   cheapest backup (least memory; cold when allowed, as cold reservations for different
   failures share memory).
3. Climb: each app in turn, most to gain first, moves to the best backup that fits with the
   others fixed (its current one always fits, so no app gets worse). Repeated until a pass
   changes nothing or ``passes`` is spent.
4. Exchange (small instances): an app whose better backup does not fit may take it if moving
   one app already on that node to its best alternative raises the total.

Node choice: a cold backup goes where it raises the node's reservation peak least (cold
reservations for different failures overlap), then where most memory is left; a warm one goes
where most memory is left. Large clusters look only at the ``scan`` nodes with most free
memory for each app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from faillite.placement.feasibility import Candidate, Context, candidate_score
from faillite.placement.greedy_state import GreedyState
from faillite.placement.model import Mode, Plan, PlanResult, Score, Status, Variant

__all__ = ["GreedyState", "polish", "solve_greedy"]

T = TypeVar("T")


def _per_allowed(ctx: Context, f: Callable[[tuple[Variant, ...]], T]) -> list[T]:
    """``f`` of each app's allowed variants, once per distinct tuple (apps alike share one)."""
    seen: dict[int, T] = {}
    out = []
    for vs in ctx.allowed:
        k = id(vs)
        if k not in seen:
            seen[k] = f(vs)
        out.append(seen[k])
    return out


def _key(c: Candidate | None) -> tuple[int, int, int]:
    return (-1, 0, 0) if c is None else (c.acc, -c.rt_ms, -c.mem_mib)


class _Greedy:
    def __init__(self, ctx: Context, scan: int) -> None:
        self.ctx = ctx
        self.st = GreedyState(ctx)
        self.scan = scan
        self._opts: dict[tuple[object, ...], list[tuple[Variant, Mode, tuple[int, int, int]]]] = {}
        self._cheap: dict[tuple[object, ...], list[tuple[Variant, Mode, tuple[int, int, int]]]] = {}
        self.uniform = len({n.speed for n in ctx.nodes}) <= 1
        self._order: list[int] = list(range(len(ctx.nodes)))
        self._budget = [n.memory_bytes for n in ctx.nodes]
        self._stale = 0

    # candidate generation ------------------------------------------------------------------

    def _sig(self, i: int, n: int) -> tuple[object, ...]:
        """What app i's options on node n depend on: apps alike share them (thousands of apps,
        a few dozen kinds)."""
        a = self.ctx.apps[i]
        return (
            a.family,
            a.primary_variant,
            a.slo_ms,
            a.critical,
            a.max_recovery_ms,
            a.weight,
            self.ctx.nodes[n].speed,
        )

    def options(self, i: int, n: int) -> list[tuple[Variant, Mode, tuple[int, int, int]]]:
        """(variant, mode, score) allowed for app i on nodes like n, best score first."""
        node = self.ctx.nodes[n]
        key = self._sig(i, n)
        if key not in self._opts:
            ctx, app = self.ctx, self.ctx.apps[i]
            opts = []
            for v in ctx.allowed[i]:
                if v.latency_on(node) > app.slo_ms:
                    continue
                for m in ctx.modes_for(i, v, node):
                    acc, rt, mib = candidate_score(app, v, m, node, ctx.inst)
                    opts.append((v, m, (acc, -rt, -mib)))
            opts.sort(key=lambda o: (o[2], -o[0].memory_bytes, o[0].name), reverse=True)
            self._opts[key] = opts
        return self._opts[key]

    def cheap_options(self, i: int, n: int) -> list[tuple[Variant, Mode, tuple[int, int, int]]]:
        key = self._sig(i, n)
        if key not in self._cheap:
            self._cheap[key] = sorted(
                self.options(i, n),
                key=lambda o: (o[0].memory_bytes, o[1] is Mode.WARM, tuple(-x for x in o[2])),
            )
        return self._cheap[key]

    def pool(self, i: int) -> list[int]:
        """Nodes that may hold app i's backup: all of them, or the ``scan`` with most free memory."""
        p = self.st.primary[i]
        assert p is not None
        ctx, n_all = self.ctx, len(self.ctx.nodes)
        group, gp = ctx.group, ctx.group[p]
        if n_all <= self.scan:
            return [n for n in range(n_all) if group[n] != gp]
        self._stale -= 1
        if self._stale <= 0:
            used, budget = self.st.used, self._budget
            self._order.sort(key=lambda n: used[n] - budget[n])
            self._stale = 64
        out = []
        scan = self.scan
        for n in self._order:
            if group[n] != gp:
                out.append(n)
                if len(out) >= scan:
                    break
        return out

    def everywhere(self, i: int) -> list[int]:
        """Every node that may hold app i's backup, the pool's order first (the wider search
        when the pool has no room)."""
        p = self.st.primary[i]
        assert p is not None
        group, gp = self.ctx.group, self.ctx.group[p]
        order = self._order if len(self.ctx.nodes) > self.scan else range(len(self.ctx.nodes))
        return [n for n in order if group[n] != gp]

    def pick(self, i: int, *, cheapest: bool = False, wide: bool = False) -> Candidate | None:
        """The best (or cheapest) backup of app i that fits now, on the best node for it.
        ``wide``: when the pool has no room, look at every node (the app has no backup, and
        the policy fails a plan that leaves one unprotected)."""
        ctx, st = self.ctx, self.st
        p = st.primary[i]
        assert p is not None
        kept = ctx.kept_candidate(i, p)
        if kept is not None:
            return kept if st.fits(kept) else None
        pool = self.pool(i)
        if not pool:
            return None
        best = self._best(i, p, pool, cheapest)
        if best is None and wide and ctx.rules.require_backup and len(ctx.nodes) > self.scan:
            # the pool (the nodes with most memory free, before cold reservations) is full:
            # look at every node before leaving the app without a backup
            best = self._best(i, p, self.everywhere(i), cheapest)
        if best is None:
            return None
        return ctx.make(i, p, best[2], best[3], best[4])

    def _best(
        self, i: int, p: int, pool: list[int], cheapest: bool
    ) -> tuple[tuple[int, int, int], tuple[int, int, int], int, Variant, Mode] | None:
        ctx, st = self.ctx, self.st
        opts = self.cheap_options(i, pool[0]) if cheapest else self.options(i, pool[0])
        uniform = self.uniform
        rate = ctx.apps[i].request_rate
        best: tuple[tuple[int, int, int], tuple[int, int, int], int, Variant, Mode] | None = None
        for v, mode, score in opts:
            if best is not None and (cheapest or score < best[0]):
                break
            mem = v.memory_bytes
            demand = v.demand_mc(rate, ctx.nodes[pool[0]])  # the same on every node when uniform
            for n in pool:
                if not uniform:
                    if not any(o[0] == v and o[1] == mode for o in self.options(i, n)):
                        continue
                    demand = v.demand_mc(rate, ctx.nodes[n])
                if not st.fits_raw(p, n, mem, mode, demand):
                    continue
                cost = st.peak_rise_raw(p, n, mem) if mode is Mode.COLD else mem
                rank = (-cost, st.free(n) - mem, -n)
                if best is None or (score, rank) > (best[0], best[1]):
                    best = (score, rank, n, v, mode)
        return best

    # phases --------------------------------------------------------------------------------

    def place_primaries(self) -> list[int]:
        ctx, st = self.ctx, self.st
        failed = []
        todo = [i for i, a in enumerate(ctx.apps) if a.primary_node is None]
        todo.sort(key=lambda i: -ctx.primary_variant[i].memory_bytes)
        for i in todo:
            app, v = ctx.apps[i], ctx.primary_variant[i]
            ok = [
                n
                for n, node in enumerate(ctx.nodes)
                if v.latency_on(node) <= app.slo_ms
                and st.used[n] + v.memory_bytes <= node.memory_bytes
                and st.mc[n] + v.demand_mc(app.request_rate, node) <= node.capacity_mc
            ]
            if not ok:
                failed.append(i)
                continue
            st.place_primary(i, max(ok, key=lambda n: (ctx.nodes[n].memory_bytes - st.used[n], -n)))
        return failed

    def cover(self) -> None:
        ctx = self.ctx

        smallest = _per_allowed(ctx, lambda vs: min((v.memory_bytes for v in vs), default=0))

        def difficulty(i: int) -> tuple[bool, bool, int]:
            kept = ctx.apps[i].name in ctx.keep
            warm_only = ctx.apps[i].critical or ctx.apps[i].max_recovery_ms is not None
            return (not kept, not warm_only, -smallest[i])

        for i in sorted(range(len(ctx.apps)), key=difficulty):
            c = self.pick(i, cheapest=True, wide=True)
            if c is not None:
                self.st.add(c)

    def climb(self, passes: int) -> None:
        ctx, st = self.ctx, self.st

        tops = _per_allowed(ctx, lambda vs: max((v.accuracy for v in vs), default=0.0))

        def gain(i: int) -> float:
            top = tops[i]
            cur = st.chosen[i]
            return -ctx.weight_int[i] * (top - (cur.variant.accuracy if cur and cur.variant else 0.0))

        for _ in range(passes):
            changed = False
            for i in sorted(range(len(ctx.apps)), key=gain):
                cur = st.chosen[i]
                if cur is not None and ctx.keep and cur == ctx.kept_candidate(i, cur.primary):
                    continue  # a kept backup stays: pick would return it, no better than itself
                old = st.remove(i)
                new = self.pick(i, wide=old is None)
                if new is None or (old is not None and _key(new) <= _key(old)):
                    new = old
                else:
                    changed = True
                if new is not None:
                    st.add(new)
            if not changed:
                return

    def exchange(self) -> None:
        """App i takes a better backup on node n after moving one app j off n (if the sum rises)."""
        ctx, st = self.ctx, self.st
        for i in range(len(ctx.apps)):
            p = st.primary[i]
            assert p is not None
            if ctx.apps[i].name in ctx.keep:
                continue
            cur = _key(st.chosen[i])
            better = [
                ctx.make(i, p, n, v, mode)
                for n in self.pool(i)
                for v, mode, score in self.options(i, n)
                if score > cur and v.memory_bytes <= ctx.nodes[n].memory_bytes - ctx.fixed_mem[n]
            ]
            better.sort(key=_key, reverse=True)
            for c in better[:8]:
                if self._try_exchange(i, c):
                    break

    def _try_exchange(self, i: int, c: Candidate) -> bool:
        """Make room for ``c`` by moving one app off its node; True when applied."""
        st = self.st
        old_i = st.remove(i)
        if st.fits(c):
            st.add(c)
            return True
        for j, cj in enumerate(st.chosen):
            if cj is None or cj.backup != c.backup or j == i or self.ctx.apps[j].name in self.ctx.keep:
                continue
            st.remove(j)
            if st.fits(c):
                st.add(c)
                alt = self.pick(j)
                allowed = alt is not None or not self.ctx.rules.require_backup
                if allowed and _sum_key(c, alt) > _sum_key(old_i, cj):
                    if alt is not None:
                        st.add(alt)
                    return True
                st.remove(i)
            st.add(cj)
        if old_i is not None:
            st.add(old_i)
        return False


def _sum_key(a: Candidate | None, b: Candidate | None) -> tuple[int, int, int]:
    ka, kb = _key(a), _key(b)
    return (max(ka[0], 0) + max(kb[0], 0), ka[1] + kb[1], ka[2] + kb[2])


def solve_greedy(
    ctx: Context,
    *,
    policy: str,
    passes: int | None = None,
    scan: int | None = None,
    exchange_limit: int = 250,
) -> PlanResult:
    """``passes`` and ``scan`` default by size: 4 and 64 up to 2,000 apps, 1 and 16 beyond."""
    large = len(ctx.apps) > 2000
    passes = passes if passes is not None else (1 if large else 4)
    g = _Greedy(ctx, scan if scan is not None else (16 if large else 64))
    unplaced = g.place_primaries()
    if unplaced:
        return PlanResult(Status.UNKNOWN, "greedy", policy)
    if ctx.rules.backups:
        g.cover()
        g.climb(passes)
        if len(ctx.apps) <= exchange_limit:
            g.exchange()
            g.climb(passes)
    return _result(ctx, g, policy)


def _result(ctx: Context, g: _Greedy, policy: str) -> PlanResult:
    st = g.st
    missing = [i for i, c in enumerate(st.chosen) if c is None]
    if ctx.rules.require_backup and missing:
        return PlanResult(Status.UNKNOWN, "greedy", policy)
    chosen = [c if c is not None else ctx.no_backup(i, st.primary[i] or 0) for i, c in enumerate(st.chosen)]
    for i, p in enumerate(st.primary):
        assert p is not None
        chosen[i] = chosen[i] if chosen[i].primary == p else ctx.no_backup(i, p)
    plan = Plan(tuple(ctx.assignment(c) for c in chosen))
    # plan_score(ctx.inst, plan), from the candidates' own scores (the same candidate_score)
    score = Score(sum(c.acc for c in chosen), -sum(c.rt_ms for c in chosen), -sum(c.mem_mib for c in chosen))
    return PlanResult(Status.FEASIBLE, "greedy", policy, plan, score)


def polish(ctx: Context, plan: Plan, *, passes: int = 1) -> Plan:
    """Climb from a feasible ``plan``: each app in turn moves to the best backup (accuracy, then
    recovery time, then memory) that fits with the others fixed; no app's score drops."""
    g = _Greedy(ctx, 16 if len(ctx.apps) > 2000 else 64)
    by_app = plan.by_app()
    for i, app in enumerate(ctx.apps):
        p = ctx.node_index[by_app[app.name].primary_node]
        if app.primary_node is None:
            g.st.place_primary(i, p)
    for i, app in enumerate(ctx.apps):
        asg = by_app[app.name]
        b = asg.backup
        if b is not None:
            v = ctx.inst.variant(app.family, b.variant)
            g.st.add(ctx.make(i, ctx.node_index[asg.primary_node], ctx.node_index[b.node], v, b.mode))
    g.climb(passes)
    out = _result(ctx, g, "")
    return out.plan if out.plan is not None else plan
