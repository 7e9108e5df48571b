"""Reading cluster and apps files, and building the planner's ``Instance`` from them.

Every error names the file, the field and the offending value, e.g.
``apps.yaml: apps[2].slo_ms: Input should be greater than 0 (got -5)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from faillite.placement import App, Family, Instance, Node, PlannerParams, Variant
from faillite.plancfg.schema import AppsFile, ClusterFile
from faillite.profiler.format import ProfileError, VariantProfile, load_profiles
from faillite.zoo.catalog import estimated_family_profiles, known_family_names

__all__ = ["ConfigError", "load_apps", "load_cluster", "load_instance", "variant_from_profile"]

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file is missing, not YAML, or has an invalid field."""


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _read(path: Path, model: type[M]) -> M:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{_loc(e['loc'])}: {e['msg']}" + ("" if e["type"] == "missing" else f" (got {e.get('input')!r})")
            for e in exc.errors()
        ]
        raise ConfigError(f"{path}: " + "; ".join(problems)) from exc


def load_cluster(path: Path) -> ClusterFile:
    cluster = _read(Path(path), ClusterFile)
    seen: set[str] = set()
    for k, n in enumerate(cluster.nodes):
        if n.id in seen:
            raise ConfigError(f"{path}: nodes[{k}].id: duplicate node id {n.id!r}")
        seen.add(n.id)
    return cluster


def load_apps(path: Path) -> AppsFile:
    apps = _read(Path(path), AppsFile)
    seen: set[str] = set()
    for k, a in enumerate(apps.apps):
        if a.name in seen:
            raise ConfigError(f"{path}: apps[{k}].name: duplicate app name {a.name!r}")
        seen.add(a.name)
    return apps


def variant_from_profile(p: VariantProfile) -> Variant:
    """The planner's view of a profile: p99 latency for the SLO, p50 for the compute budget."""
    return Variant(
        p.family,
        p.variant,
        p.accuracy,
        p.memory_bytes,
        p.load_ms,
        p.first_infer_ms,
        p.infer_p99_ms,
        p.infer_p50_ms,
    )


def _families(
    names: set[str], profile_paths: Sequence[Path], apps_path: Path, where: dict[str, str]
) -> dict[str, Family]:
    measured: dict[str, list[Variant]] = {}
    for path in profile_paths:
        try:
            for p in load_profiles(Path(path)).variants:
                measured.setdefault(p.family, []).append(variant_from_profile(p))
        except ProfileError as exc:
            raise ConfigError(str(exc)) from exc
    out = {}
    for name in sorted(names):
        if name in measured:
            out[name] = Family(name, tuple(measured[name]))
            continue
        try:
            out[name] = Family(name, tuple(variant_from_profile(p) for p in estimated_family_profiles(name)))
        except (KeyError, ValueError) as exc:
            known = ", ".join(sorted(set(known_family_names()) | set(measured)))
            raise ConfigError(
                f"{apps_path}: {where[name]}: unknown family {name!r} (known: {known})"
            ) from exc
    return out


def load_instance(cluster_path: Path, apps_path: Path, profile_paths: Sequence[Path] = ()) -> Instance:
    cluster = load_cluster(cluster_path)
    apps_file = load_apps(apps_path)
    nodes = tuple(Node(n.id, n.memory, n.cores, n.speed, n.domain) for n in cluster.nodes)
    node_ids = {n.id for n in nodes}
    where = {}
    for k, a in enumerate(apps_file.apps):
        where.setdefault(a.family, f"apps[{k}].family")
    families = _families({a.family for a in apps_file.apps}, profile_paths, apps_path, where)
    fastest = max(n.speed for n in nodes)
    apps = []
    for k, a in enumerate(apps_file.apps):
        fam = families[a.family]
        if a.node is not None and a.node not in node_ids:
            raise ConfigError(
                f"{apps_path}: apps[{k}].node: unknown node {a.node!r} "
                f"(nodes in {cluster_path}: {', '.join(sorted(node_ids))})"
            )
        variant = a.variant
        if variant is None:
            speed = fastest if a.node is None else next(n.speed for n in nodes if n.id == a.node)
            ok = [v for v in fam.variants if v.latency_ms / speed <= a.slo_ms]
            if not ok:
                quickest = min(v.latency_ms for v in fam.variants) / speed
                raise ConfigError(
                    f"{apps_path}: apps[{k}].slo_ms: no variant of {a.family} meets "
                    f"{a.slo_ms:g} ms (quickest takes {quickest:g} ms)"
                )
            variant = max(ok, key=lambda v: (v.accuracy, -v.memory_bytes)).name
        elif variant not in {v.name for v in fam.variants}:
            names = ", ".join(v.name for v in fam.variants)
            raise ConfigError(
                f"{apps_path}: apps[{k}].variant: family {a.family} has no variant {variant!r} "
                f"(variants: {names})"
            )
        apps.append(
            App(
                a.name,
                a.family,
                variant,
                a.slo_ms,
                a.weight,
                a.critical,
                a.max_recovery_ms,
                a.request_rate,
                a.node,
            )
        )
    params = PlannerParams(cluster.detection_ms, cluster.switch_ms, cluster.use_domains)
    return Instance(nodes, tuple(families.values()), tuple(apps), params)
