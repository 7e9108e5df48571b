"""The greedy planner's bookkeeping: memory and compute in use per node and per failure
scenario, with O(1) feasibility checks (``faillite.placement.greedy``)."""

from __future__ import annotations

from collections import defaultdict

from faillite.placement.feasibility import Candidate, Context
from faillite.placement.model import Mode

__all__ = ["GreedyState"]


class GreedyState:
    """Memory and compute in use per node and per failure scenario, with O(1) feasibility checks."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        n = len(ctx.nodes)
        self.budget = [node.memory_bytes for node in ctx.nodes]
        self.cap = [node.capacity_mc for node in ctx.nodes]
        self.used = list(ctx.fixed_mem)  # primaries + warm backups
        self.cold: list[dict[int, int]] = [defaultdict(int) for _ in range(n)]  # scenario -> bytes
        self.peak = [0] * n
        self.mc = list(ctx.fixed_mc)  # primaries' compute
        self.after: list[dict[int, int]] = [defaultdict(int) for _ in range(n)]  # scenario -> mc
        self.chosen: list[Candidate | None] = [None] * len(ctx.apps)
        self.primary: list[int | None] = [
            None if a.primary_node is None else ctx.node_index[a.primary_node] for a in ctx.apps
        ]

    def free(self, n: int) -> int:
        return self.budget[n] - self.used[n] - self.peak[n]

    def place_primary(self, i: int, n: int) -> None:
        app, v = self.ctx.apps[i], self.ctx.primary_variant[i]
        self.primary[i] = n
        self.used[n] += v.memory_bytes
        self.mc[n] += v.demand_mc(app.request_rate, self.ctx.nodes[n])

    def fits(self, c: Candidate) -> bool:
        if c.backup is None:
            return True
        assert c.mode is not None
        return self.fits_raw(c.primary, c.backup, c.mem, c.mode, c.demand_mc)

    def fits_raw(self, p: int, n: int, mem: int, mode: Mode, demand_mc: int) -> bool:
        budget = self.budget[n]
        scen = self.ctx.scenarios_of[p]
        used = self.used[n]
        if mode is Mode.WARM:
            if used + self.peak[n] + mem > budget:
                return False
        else:
            cold = self.cold[n]
            for s in scen:
                if used + cold[s] + mem > budget:
                    return False
        if demand_mc:
            cap, after, mc = self.cap[n], self.after[n], self.mc[n]
            for s in scen:
                if mc + after[s] + demand_mc > cap:
                    return False
        return True

    def peak_rise_raw(self, p: int, n: int, mem: int) -> int:
        cold = self.cold[n]
        top = max(cold[s] + mem for s in self.ctx.scenarios_of[p])
        return max(0, top - self.peak[n])

    def peak_rise(self, c: Candidate) -> int:
        assert c.backup is not None
        n = c.backup
        top = max(self.cold[n][s] + c.mem for s in self.ctx.scenarios_of[c.primary])
        return max(0, top - self.peak[n])

    def add(self, c: Candidate) -> None:
        self.chosen[c.app] = c
        n = c.backup
        if n is None:
            return
        for s in self.ctx.scenarios_of[c.primary]:
            self.after[n][s] += c.demand_mc
            if c.mode is Mode.COLD:
                self.cold[n][s] += c.mem
                self.peak[n] = max(self.peak[n], self.cold[n][s])
        if c.mode is Mode.WARM:
            self.used[n] += c.mem

    def remove(self, i: int) -> Candidate | None:
        c = self.chosen[i]
        self.chosen[i] = None
        if c is None or c.backup is None:
            return c
        n = c.backup
        for s in self.ctx.scenarios_of[c.primary]:
            self.after[n][s] -= c.demand_mc
            if c.mode is Mode.COLD:
                self.cold[n][s] -= c.mem
        if c.mode is Mode.COLD:
            self.peak[n] = max(self.cold[n].values(), default=0)
        else:
            self.used[n] -= c.mem
        return c
