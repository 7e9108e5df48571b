"""Generated clusters for the simulator and the planner at scale: seeded, reproducible, pure.

``generate_cluster(nodes, apps, seed=...)`` returns a cluster file document in the ``faillite
up`` format (``faillite.launch.config.ClusterConfig``): heterogeneous nodes grouped in failure
domains, and apps whose families are zoo families (stand-ins of published models, whose
accuracy is the PUBLISHED top-1, and the trained ``digits``), each pinned to its primary node.

Memory. Each node gets a size tier (1x, 2x or 4x: small boxes are common, large ones rare).
Primaries are pinned largest first onto the node whose primary memory is lowest for its tier,
so a node's primaries grow with its tier. Its budget is then its primaries' memory divided by
``1 - spare``: ``spare`` is the share of every node's memory left free after its primaries, the
room backups of any policy must fit in (0.25: a quarter free, well below what full replication
needs). Memory is counted with the stand-ins' estimated profiles at ``standins.scale``
(``cluster_profiles``), the ones the simulator and ``faillite plan`` use.

Compute. Cores come from the tier (2, 4 or 8), raised to twice the primaries' demand so that
memory, not compute, is what a failover is short of (the paper's setting).

Request rates are the apps' ``rate`` field (requests/s, ``AppSpec.rate``): log-normal around 5/s.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from faillite.profiler.format import VariantProfile
from faillite.zoo.catalog import builtin_family_names, estimated_family_profiles, standin_families

__all__ = [
    "DEFAULT_FAMILIES",
    "DEFAULT_STANDINS",
    "cluster_profiles",
    "generate_cluster",
    "write_cluster",
]

#: Stand-in families with a choice of variants (so a backup can be smaller), and digits.
DEFAULT_FAMILIES = (
    "ResNet",
    "EfficientNet",
    "MobileNet",
    "RegNet",
    "ConvNeXt",
    "Swin",
    "DenseNet",
    "ShuffleNet",
    "MNASNet",
    "ResNeXt",
    "digits",
)
DEFAULT_STANDINS: dict[str, Any] = {"scale": 0.02, "input_px": 64}
_TIERS = ((1, 2, 0.6), (2, 4, 0.3), (4, 8, 0.1))  # (memory weight, cores, share of nodes)
_CRITICAL_SHARE = 0.1
_MIB = 1 << 20
_PLAIN = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*|[0-9]+MiB)$")
_KEYWORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}


@cache
def _profiles(family: str, scale: float) -> tuple[VariantProfile, ...]:
    return estimated_family_profiles(family, scale=scale)


def cluster_profiles(doc: Mapping[str, Any]) -> list[VariantProfile]:
    """Estimated profiles of every variant of the families a cluster document's apps use, at
    its stand-in scale (what the generator sized the memory with)."""
    scale = float((doc.get("standins") or {}).get("scale", DEFAULT_STANDINS["scale"]))
    families = sorted({a["family"] for a in doc.get("apps", ())})
    return [p for f in families for p in _profiles(f, scale)]


def generate_cluster(
    nodes: int,
    apps: int,
    *,
    seed: int = 0,
    domain_size: int = 10,
    spare: float = 0.25,
    standins: Mapping[str, Any] | None = None,
    families: Iterable[str] = DEFAULT_FAMILIES,
    policy: str = "faillite",
) -> dict[str, Any]:
    """A cluster document (see the module doc). ``domain_size`` nodes share a failure domain
    (``rack-001``, ...; 0 or 1, or at least ``nodes``: no domains). The controller section asks for the greedy
    planner beyond 200 apps (exact cannot finish there)."""
    if nodes < 2:
        raise ValueError(f"nodes: at least 2, got {nodes}")
    if apps < 0:
        raise ValueError(f"apps: at least 0, got {apps}")
    if not 0 <= spare < 1:
        raise ValueError(f"spare: a fraction in [0, 1), got {spare}")
    stand = {**DEFAULT_STANDINS, **(standins or {})}
    scale = float(stand["scale"])
    known = set(standin_families()) | set(builtin_family_names())
    fams = sorted(dict.fromkeys(families))
    unknown = [f for f in fams if f not in known]
    if unknown or not fams:
        raise ValueError(f"families: unknown {unknown} (known: {', '.join(sorted(known))})")
    profiles = {
        f: sorted(_profiles(f, scale), key=lambda p: (p.memory_bytes, -p.accuracy, p.variant)) for f in fams
    }
    rng = random.Random(seed)

    node_ids = [f"node-{k + 1:04d}" for k in range(nodes)]
    tiers = [_draw_tier(rng) for _ in range(nodes)]
    app_docs = [_draw_app(rng, k, fams, profiles) for k in range(apps)]
    mem_of = {(p.family, p.variant): p for ps in profiles.values() for p in ps}

    # primaries: largest first, onto the node with least primary memory per unit of tier
    load = [0] * nodes
    demand = [0.0] * nodes
    heap = [(0.0, k) for k in range(nodes)]
    order = sorted(
        range(apps), key=lambda k: (-mem_of[app_docs[k]["family"], app_docs[k]["variant"]].memory_bytes, k)
    )
    for k in order:
        _, n = heapq.heappop(heap)
        p = mem_of[app_docs[k]["family"], app_docs[k]["variant"]]
        app_docs[k]["node"] = node_ids[n]
        load[n] += p.memory_bytes
        demand[n] += app_docs[k]["rate"] * p.infer_p50_ms  # millicores
        heapq.heappush(heap, (load[n] / _TIERS[tiers[n]][0], n))

    largest = max((p.memory_bytes for ps in profiles.values() for p in ps), default=_MIB)
    node_docs = []
    for n in range(nodes):
        weight, cores, _ = _TIERS[tiers[n]]
        # a node without primaries still gets room for a few backups
        used = load[n] if load[n] else largest * weight
        memory = math.ceil(used / (1 - spare) / _MIB)
        node_doc: dict[str, Any] = {
            "id": node_ids[n],
            "memory": f"{memory}MiB",
            "cores": max(cores, math.ceil(2 * demand[n] / 1000)),
        }
        if 1 < domain_size < nodes:  # one domain holding every node would leave no backup room
            node_doc["domain"] = f"rack-{n // domain_size + 1:03d}"
        node_docs.append(node_doc)
    return {
        "nodes": node_docs,
        "apps": app_docs,
        "standins": dict(stand),
        "controller": {"policy": policy, "method": "greedy" if apps > 200 else "exact"},
        "gateway": False,
    }


def _draw_tier(rng: random.Random) -> int:
    x, acc = rng.random(), 0.0
    for k, (_, _, share) in enumerate(_TIERS):
        acc += share
        if x < acc:
            return k
    return len(_TIERS) - 1


def _draw_app(
    rng: random.Random, k: int, fams: list[str], profiles: Mapping[str, list[VariantProfile]]
) -> dict[str, Any]:
    family = rng.choice(fams)
    variants = profiles[family]
    # home variant: any but the smallest (a smaller backup then exists), undominated ones only
    front = [
        v
        for v in variants
        if not any(w.memory_bytes <= v.memory_bytes and w.accuracy > v.accuracy for w in variants)
    ]
    home = rng.choice(front[1:] or front)
    critical = rng.random() < _CRITICAL_SHARE
    rate = round(min(50.0, max(0.5, rng.lognormvariate(math.log(5.0), 0.8))), 1)
    doc: dict[str, Any] = {
        "name": f"app-{k + 1:05d}",
        "family": family,
        "variant": home.variant,
        # the SLO leaves room for the variant's p99 and a slower backup
        "slo_ms": max(5.0, math.ceil(home.infer_p99_ms * rng.uniform(1.5, 4.0))),
        "critical": critical,
        "weight": 3.0 if critical else rng.choice((1.0, 1.0, 2.0)),
        "rate": rate,
    }
    return doc


def write_cluster(doc: Mapping[str, Any], path: Path | str, *, command: str | None = None) -> None:
    """Write ``doc`` as YAML, one node or app a line, under a comment naming the command that
    made it (default: ``faillite sim generate`` with the document's counts)."""
    if command is None:
        command = f"faillite sim generate --nodes {len(doc['nodes'])} --apps {len(doc.get('apps', ()))}"
    lines = [f"# Generated by: {command}", "# Accuracies of stand-in families are PUBLISHED ImageNet top-1."]
    rest = {k: v for k, v in doc.items() if k not in ("nodes", "apps")}
    for key in ("nodes", "apps"):
        lines.append(f"{key}:")
        lines.extend(f"  - {_flow(item)}" for item in doc.get(key, ()))
    if rest:
        lines.append(yaml.safe_dump(rest, sort_keys=False, default_flow_style=None).rstrip())
    Path(path).write_text("\n".join(lines) + "\n")


def _flow(item: Mapping[str, Any]) -> str:
    """One mapping as a YAML flow mapping (keys are plain words; values dumped safely)."""
    return "{" + ", ".join(f"{key}: {_scalar(value)}" for key, value in item.items()) + "}"


def _scalar(value: Any) -> str:
    # JSON scalars are YAML scalars; plain names are left unquoted (they cannot read as
    # numbers, booleans or null: they start with a letter and none is a YAML keyword; sizes read as strings)
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _KEYWORDS:
        return value
    return json.dumps(value)
