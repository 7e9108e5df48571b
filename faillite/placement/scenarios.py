"""Failure scenarios: every single node, and every failure domain when domains are given."""

from __future__ import annotations

from dataclasses import dataclass

from faillite.placement.model import Node

__all__ = ["Scenario", "failure_scenarios", "same_domain"]


@dataclass(frozen=True)
class Scenario:
    name: str  # "edge-1" for a node, "domain rack-a" for a failure domain
    failed: frozenset[str]

    def describe(self) -> str:
        return f"a failure of {self.name}"


def same_domain(a: Node, b: Node, *, use_domains: bool = True) -> bool:
    """True when ``a`` and ``b`` fail together: the same node, or the same failure domain."""
    if a.id == b.id:
        return True
    return use_domains and a.domain is not None and a.domain == b.domain


def failure_scenarios(nodes: tuple[Node, ...], *, use_domains: bool = True) -> tuple[Scenario, ...]:
    """Each node alone, then each failure domain that holds more than one node (in name order)."""
    scenarios = [Scenario(n.id, frozenset({n.id})) for n in nodes]
    if use_domains:
        domains: dict[str, set[str]] = {}
        for n in nodes:
            if n.domain is not None:
                domains.setdefault(n.domain, set()).add(n.id)
        for name in sorted(domains):
            if len(domains[name]) > 1:
                scenarios.append(Scenario(f"domain {name}", frozenset(domains[name])))
    return tuple(scenarios)
