"""The planner's data: frozen dataclasses in, frozen dataclasses out.

Units: memory in bytes, times in milliseconds, compute in millicores (thousandths of a core),
request rates in requests per second. ``speed`` scales a node's inference (2.0 = twice as fast
as the machine the profiles were measured on).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

__all__ = [
    "ACCURACY_SCALE",
    "WEIGHT_SCALE",
    "App",
    "Assignment",
    "Backup",
    "Family",
    "Instance",
    "Mode",
    "Node",
    "Plan",
    "PlanResult",
    "PlannerParams",
    "PlanningError",
    "Score",
    "SharedFallback",
    "Status",
    "Variant",
]

#: Accuracy and weights are integer-scaled for CP-SAT: A = round(accuracy * ACCURACY_SCALE),
#: W = round(weight * WEIGHT_SCALE), and the objective is the sum of W * A.
ACCURACY_SCALE = 1_000_000
WEIGHT_SCALE = 1_000


class PlanningError(ValueError):
    """The input is inconsistent (unknown family, variant or node; duplicate names)."""


@dataclass(frozen=True)
class Node:
    id: str
    memory_bytes: int
    cores: float = 1.0
    speed: float = 1.0
    domain: str | None = None

    @property
    def capacity_mc(self) -> int:
        """Compute capacity in millicores."""
        return round(self.cores * 1000)


@dataclass(frozen=True)
class Variant:
    """One variant's profile: what the planner needs of ``faillite.profiler.format.VariantProfile``."""

    family: str
    name: str
    accuracy: float
    memory_bytes: int
    load_ms: float
    first_infer_ms: float
    latency_ms: float  # tail latency of one request (p99), checked against the SLO
    service_ms: float  # typical compute time of one request (p50), for the compute budget

    def latency_on(self, node: Node) -> float:
        return self.latency_ms / node.speed

    def demand_mc(self, rate: float, node: Node) -> int:
        """Compute used on ``node`` to serve ``rate`` requests/s, in millicores (rounded up)."""
        return math.ceil(rate * self.service_ms / node.speed)


@dataclass(frozen=True)
class Family:
    name: str
    variants: tuple[Variant, ...]
    # The fallback key: families with the same task and input/output signature share it, and
    # one's variant can answer for another's apps (a shared warm fallback). None: share nothing.
    task: str | None = None

    @cached_property
    def _by_name(self) -> dict[str, Variant]:
        out: dict[str, Variant] = {}
        for v in self.variants:
            out.setdefault(v.name, v)  # the first of a name, as a scan would find
        return out

    def variant(self, name: str) -> Variant:
        try:
            return self._by_name[name]
        except KeyError:
            raise PlanningError(f"family {self.name!r} has no variant {name!r}") from None


@dataclass(frozen=True)
class App:
    name: str
    family: str
    primary_variant: str
    slo_ms: float
    weight: float = 1.0
    critical: bool = False
    max_recovery_ms: float | None = None
    request_rate: float = 0.0
    primary_node: str | None = None  # None: the planner places the primary


@dataclass(frozen=True)
class PlannerParams:
    """The recovery-time model: warm = detection + switch; cold = detection + load + first inference."""

    detection_ms: float = 50.0
    switch_ms: float = 5.0
    use_domains: bool = True

    def warm_recovery_ms(self) -> float:
        return self.detection_ms + self.switch_ms

    def cold_recovery_ms(self, variant: Variant, node: Node) -> float:
        return self.detection_ms + variant.load_ms + variant.first_infer_ms / node.speed


@dataclass(frozen=True)
class Instance:
    nodes: tuple[Node, ...]
    families: tuple[Family, ...]
    apps: tuple[App, ...]
    params: PlannerParams = field(default_factory=PlannerParams)

    def __post_init__(self) -> None:
        for kind, names in (
            ("node", [n.id for n in self.nodes]),
            ("family", [f.name for f in self.families]),
            ("app", [a.name for a in self.apps]),
        ):
            if len(set(names)) < len(names):  # counted only then: linear in the common case
                dupes = sorted(x for x, k in Counter(names).items() if k > 1)
                raise PlanningError(f"duplicate {kind} {dupes[0]!r}")
        nodes = {n.id for n in self.nodes}
        fams = {f.name: f for f in self.families}
        for a in self.apps:
            if a.family not in fams:
                raise PlanningError(f"app {a.name!r}: unknown family {a.family!r}")
            fams[a.family].variant(a.primary_variant)
            if a.primary_node is not None and a.primary_node not in nodes:
                raise PlanningError(f"app {a.name!r}: unknown primary node {a.primary_node!r}")

    @cached_property
    def _nodes(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @cached_property
    def _families(self) -> dict[str, Family]:
        return {f.name: f for f in self.families}

    @cached_property
    def _apps(self) -> dict[str, App]:
        return {a.name: a for a in self.apps}

    def node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise PlanningError(f"unknown node {node_id!r}") from None

    def family(self, name: str) -> Family:
        try:
            return self._families[name]
        except KeyError:
            raise PlanningError(f"unknown family {name!r}") from None

    def variant(self, family: str, name: str) -> Variant:
        return self.family(family).variant(name)

    def app(self, name: str) -> App:
        try:
            return self._apps[name]
        except KeyError:
            raise PlanningError(f"unknown app {name!r}") from None


class Mode(StrEnum):
    WARM = "warm"
    COLD = "cold"


@dataclass(frozen=True)
class Backup:
    node: str
    variant: str
    mode: Mode


@dataclass(frozen=True)
class Assignment:
    app: str
    primary_node: str
    primary_variant: str
    backup: Backup | None


@dataclass(frozen=True)
class SharedFallback:
    """One warm model on ``node`` that answers for ``apps`` (of other families with the same
    fallback key) from the moment their primary's node fails until their own backup serves."""

    node: str
    family: str
    variant: str
    apps: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    assignments: tuple[Assignment, ...]
    shared: tuple[SharedFallback, ...] = ()  # policy faillite-shared

    def __iter__(self) -> Iterator[Assignment]:
        return iter(self.assignments)

    def by_app(self) -> Mapping[str, Assignment]:
        return {a.app: a for a in self.assignments}

    def shared_for(self, app: str) -> SharedFallback | None:
        """The shared warm fallback that answers for ``app``, if any."""
        for sf in self.shared:
            if app in sf.apps:
                return sf
        return None


@dataclass(frozen=True, order=True)
class Score:
    """Lexicographic plan quality, larger is better: accuracy first, then recovery, then memory.

    ``accuracy`` is the integer-scaled sum of weight x backup accuracy; ``recovery_ms`` and
    ``memory_mib`` are negated sums (expected recovery in whole ms, backup memory in whole MiB)
    so that a plain tuple comparison orders plans.
    """

    accuracy: int
    neg_recovery_ms: int
    neg_memory_mib: int

    @property
    def weighted_accuracy(self) -> float:
        return self.accuracy / (ACCURACY_SCALE * WEIGHT_SCALE)


class Status(StrEnum):
    OPTIMAL = "optimal"  # weighted accuracy proven optimal (exact)
    FEASIBLE = "feasible"  # a valid plan, optimality not proven
    INFEASIBLE = "infeasible"  # proven that no plan satisfies the constraints
    UNKNOWN = "unknown"  # no plan found within the limits, infeasibility not proven


@dataclass(frozen=True)
class PlanResult:
    status: Status
    method: str
    policy: str
    plan: Plan | None = None
    score: Score | None = None
    bound: float | None = None  # upper bound on the weighted accuracy (exact only)
    reasons: tuple[str, ...] = ()
    solver_seconds: float | None = None  # CP-SAT's own wall time; callers time the whole call
    tiebreaks_optimal: bool = False  # exact: recovery time and memory proven minimal too

    @property
    def ok(self) -> bool:
        return self.plan is not None

    @property
    def objective(self) -> float | None:
        return None if self.score is None else self.score.weighted_accuracy
