"""Failure traces for the simulator: which nodes fail when, how, and when they come back.

A SPEC is one or more of these joined with ``+`` (their events merged in time order):

- ``node:ID`` — node ID fails;
- ``domain:NAME`` — every node of failure domain NAME fails at once (one event);
- ``repeat:ID,COUNT,EVERY_S`` — node ID fails COUNT times, EVERY_S seconds apart, each time
  repaired after ``repair`` seconds (default EVERY_S / 2: it must be back before it fails again);
- ``random:COUNT`` — the first COUNT failures of per-node renewal processes: every node is up
  for a time to failure (``ttf``), then down for a time to repair (``ttr``), and again. Without
  ``ttr`` a failed node stays down (so COUNT is at most the number of nodes). Default ``ttf``:
  exponential with mean ``horizon_s`` x nodes / COUNT, so the COUNT failures spread over about
  the horizon. Distributions: ``exp:MEAN_S`` or ``weibull:SHAPE:SCALE_S``;
- a trace file (YAML or JSON): a list of ``{at_s, nodes | node | domain, kind, repair_after_s}``
  (or a mapping with that list under ``failures``).

Options after a comma, for every kind but files: ``at=S`` (first failure time, default 0; for
``random`` an offset added to every time), ``repair=S`` (repair after S seconds; default never,
for ``node``/``domain``), ``kind=crash|hang`` (default crash; a hung node stops answering but
keeps its connections open, so only heartbeats tell). ``random`` also takes ``ttf=`` and ``ttr=``.
Examples: ``node:node-0001``, ``domain:rack-002,at=5,repair=60``, ``random:100,ttr=exp:300``,
``repeat:node-0003,3,120+node:node-0007,at=30``.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = ["FailureEvent", "FailureSpecError", "parse_failures"]

Kind = Literal["crash", "hang"]
_KINDS = ("crash", "hang")
_PREFIXES = ("node:", "domain:", "random:", "repeat:")


class FailureSpecError(ValueError):
    """A failure spec or trace file that names something unknown or holds a bad value."""


@dataclass(frozen=True)
class FailureEvent:
    at_s: float  # seconds from the start of the simulated run
    nodes: tuple[str, ...]  # the nodes that fail together
    kind: Kind = "crash"
    repair_after_s: float | None = None  # None: the nodes stay down


def parse_failures(
    spec: str, nodes: Sequence[tuple[str, str | None]], *, seed: int = 0, horizon_s: float = 600.0
) -> tuple[FailureEvent, ...]:
    """The events of ``spec`` (see the module doc) for a cluster of ``nodes`` (id, domain),
    in time order. Deterministic for a given seed."""
    spec = spec.strip()
    if not spec:
        raise FailureSpecError("empty failure spec")
    if horizon_s <= 0:
        raise FailureSpecError(f"horizon_s must be positive, got {horizon_s}")
    cluster = _Cluster(nodes)
    if not spec.startswith(_PREFIXES) and _looks_like_file(spec):
        return _sorted(_trace_file(Path(spec), cluster))
    rng = random.Random(seed)
    events: list[FailureEvent] = []
    for part in spec.split("+"):
        part = part.strip()
        if not part:
            raise FailureSpecError(f"{spec!r}: empty part between '+'")
        events.extend(_one(part, cluster, rng, horizon_s))
    return _sorted(events)


class _Cluster:
    def __init__(self, nodes: Sequence[tuple[str, str | None]]) -> None:
        self.ids = [n for n, _ in nodes]
        self.domains: dict[str, list[str]] = {}
        for n, d in nodes:
            if d is not None:
                self.domains.setdefault(d, []).append(n)
        self._known = set(self.ids)

    def node(self, node_id: str, where: str) -> str:
        if node_id not in self._known:
            raise FailureSpecError(f"{where}: unknown node {node_id!r} ({_some(self.ids)})")
        return node_id

    def domain(self, name: str, where: str) -> tuple[str, ...]:
        if name not in self.domains:
            known = _some(sorted(self.domains)) if self.domains else "the cluster has no failure domains"
            raise FailureSpecError(f"{where}: unknown domain {name!r} ({known})")
        return tuple(self.domains[name])


def _some(names: Sequence[str], k: int = 5) -> str:
    shown = ", ".join(names[:k])
    return f"known: {shown}" + (f", ... ({len(names)} in all)" if len(names) > k else "")


def _sorted(events: Iterable[FailureEvent]) -> tuple[FailureEvent, ...]:
    return tuple(sorted(events, key=lambda e: (e.at_s, e.nodes)))


def _looks_like_file(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml", ".json")) or "/" in spec or Path(spec).is_file()


# --- specs ---------------------------------------------------------------------------------


def _one(part: str, cluster: _Cluster, rng: random.Random, horizon_s: float) -> list[FailureEvent]:
    prefix, _, body = part.partition(":")
    if prefix not in {p[:-1] for p in _PREFIXES}:
        raise FailureSpecError(
            f"{part!r}: expected node:ID, domain:NAME, random:COUNT, repeat:ID,COUNT,EVERY_S or a trace file"
        )
    fields = [f.strip() for f in body.split(",")]
    args = [f for f in fields if "=" not in f]
    opts = dict(f.split("=", 1) for f in fields if "=" in f)
    allowed = {"at", "repair", "kind"} | ({"ttf", "ttr"} if prefix == "random" else set())
    extra = sorted(set(opts) - allowed)
    if extra:
        raise FailureSpecError(
            f"{part!r}: unknown option {extra[0]!r} (options: {', '.join(sorted(allowed))})"
        )
    kind = opts.get("kind", "crash")
    if kind not in _KINDS:
        raise FailureSpecError(f"{part!r}: kind must be crash or hang, got {kind!r}")
    at = _number(opts.get("at", "0"), f"{part!r}: at", minimum=0.0)
    repair = None if "repair" not in opts else _number(opts["repair"], f"{part!r}: repair", positive=True)
    if prefix in ("node", "domain"):
        if len(args) != 1 or not args[0]:
            raise FailureSpecError(f"{part!r}: expected {prefix}:{'ID' if prefix == 'node' else 'NAME'}")
        failed = (cluster.node(args[0], part),) if prefix == "node" else cluster.domain(args[0], part)
        return [FailureEvent(at, failed, kind, repair)]  # type: ignore[arg-type]
    if prefix == "repeat":
        if len(args) != 3:
            raise FailureSpecError(f"{part!r}: expected repeat:ID,COUNT,EVERY_S")
        node = cluster.node(args[0], part)
        count = _count(args[1], f"{part!r}: COUNT")
        every = _number(args[2], f"{part!r}: EVERY_S", positive=True)
        repair = every / 2 if repair is None else repair
        if repair >= every:
            raise FailureSpecError(
                f"{part!r}: repair ({repair:g} s) must be shorter than EVERY_S ({every:g} s)"
            )
        return [FailureEvent(at + k * every, (node,), kind, repair) for k in range(count)]  # type: ignore[arg-type]
    if len(args) != 1:
        raise FailureSpecError(f"{part!r}: expected random:COUNT[,ttf=...][,ttr=...][,kind=...]")
    if "repair" in opts:
        raise FailureSpecError(f"{part!r}: random takes ttr=DIST for repairs, not repair=")
    count = _count(args[0], f"{part!r}: COUNT")
    n = len(cluster.ids)
    ttf = _dist(opts["ttf"], f"{part!r}: ttf") if "ttf" in opts else _exp(horizon_s * n / count)
    ttr = _dist(opts["ttr"], f"{part!r}: ttr") if "ttr" in opts else None
    if ttr is None and count > n:
        raise FailureSpecError(f"{part!r}: {count} failures of {n} nodes that are never repaired (give ttr=)")
    return _renewals(cluster.ids, count, ttf, ttr, kind, at, rng)  # type: ignore[arg-type]


def _renewals(
    ids: Sequence[str],
    count: int,
    ttf: Callable[[random.Random], float],
    ttr: Callable[[random.Random], float] | None,
    kind: Kind,
    offset: float,
    rng: random.Random,
) -> list[FailureEvent]:
    """The first ``count`` failures of independent per-node up/down processes."""
    heap = [(ttf(rng), k) for k in range(len(ids))]  # each node's next failure
    heapq.heapify(heap)
    out = []
    while len(out) < count:
        t, k = heapq.heappop(heap)
        down = None if ttr is None else ttr(rng)
        out.append(FailureEvent(offset + t, (ids[k],), kind, down))
        if down is not None:
            heapq.heappush(heap, (t + down + ttf(rng), k))
    return out


def _exp(mean: float) -> Callable[[random.Random], float]:
    return lambda rng: rng.expovariate(1.0 / mean)


def _dist(text: str, where: str) -> Callable[[random.Random], float]:
    name, _, rest = text.partition(":")
    params = rest.split(":") if rest else []
    if name == "exp" and len(params) == 1:
        return _exp(_number(params[0], f"{where}: MEAN_S", positive=True))
    if name == "weibull" and len(params) == 2:
        shape = _number(params[0], f"{where}: SHAPE", positive=True)
        scale = _number(params[1], f"{where}: SCALE_S", positive=True)
        return lambda rng: rng.weibullvariate(scale, shape)
    raise FailureSpecError(f"{where}: expected exp:MEAN_S or weibull:SHAPE:SCALE_S, got {text!r}")


def _number(text: Any, where: str, *, positive: bool = False, minimum: float | None = None) -> float:
    try:
        x = float(text)
    except (TypeError, ValueError):
        raise FailureSpecError(f"{where}: expected a number, got {text!r}") from None
    if isinstance(text, bool) or not math.isfinite(x):
        raise FailureSpecError(f"{where}: expected a finite number, got {text!r}")
    if positive and x <= 0:
        raise FailureSpecError(f"{where}: must be positive, got {text!r}")
    if minimum is not None and x < minimum:
        raise FailureSpecError(f"{where}: must be at least {minimum:g}, got {text!r}")
    return x


def _count(text: str, where: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise FailureSpecError(f"{where}: expected a whole number, got {text!r}") from None
    if k < 1:
        raise FailureSpecError(f"{where}: must be at least 1, got {k}")
    return k


# --- trace files ---------------------------------------------------------------------------


def _trace_file(path: Path, cluster: _Cluster) -> list[FailureEvent]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FailureSpecError(f"{path}: trace file not found") from None
    except OSError as exc:
        raise FailureSpecError(f"{path}: cannot read the trace file ({exc.strerror})") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise FailureSpecError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    if isinstance(doc, Mapping) and "failures" in doc:
        doc = doc["failures"]
    if not isinstance(doc, list):
        raise FailureSpecError(f"{path}: expected a list of failure events (or a mapping with 'failures')")
    return [_trace_event(item, f"{path}: [{k}]", cluster) for k, item in enumerate(doc)]


def _trace_event(item: Any, where: str, cluster: _Cluster) -> FailureEvent:
    if not isinstance(item, Mapping):
        raise FailureSpecError(f"{where}: expected a mapping, got {type(item).__name__}")
    extra = sorted(set(item) - {"at_s", "nodes", "node", "domain", "kind", "repair_after_s"})
    if extra:
        raise FailureSpecError(f"{where}.{extra[0]}: unknown field")
    if "at_s" not in item:
        raise FailureSpecError(f"{where}.at_s: missing")
    at = _number(item["at_s"], f"{where}.at_s", minimum=0.0)
    which = [k for k in ("nodes", "node", "domain") if k in item]
    if len(which) != 1:
        raise FailureSpecError(f"{where}: give exactly one of nodes, node, domain")
    key = which[0]
    if key == "node":
        failed: tuple[str, ...] = (cluster.node(str(item["node"]), f"{where}.node"),)
    elif key == "domain":
        failed = cluster.domain(str(item["domain"]), f"{where}.domain")
    else:
        listed = item["nodes"]
        if not isinstance(listed, list) or not listed:
            raise FailureSpecError(f"{where}.nodes: expected a non-empty list of node ids")
        failed = tuple(dict.fromkeys(cluster.node(str(n), f"{where}.nodes") for n in listed))
    kind = item.get("kind", "crash")
    if kind not in _KINDS:
        raise FailureSpecError(f"{where}.kind: must be crash or hang, got {kind!r}")
    repair = item.get("repair_after_s")
    if repair is not None:
        repair = _number(repair, f"{where}.repair_after_s", positive=True)
    return FailureEvent(at, failed, kind, repair)
