"""What the zoo knows without building anything: the built-in digits family and the
published figures that stand-in families are generated from.

Stand-in families group torchvision's table by family; the table's "Other small" group is
split by architecture (ShuffleNet, MNASNet, ...). Variant names are lower-case
``<model>-<weights>``, e.g. ``resnet50-imagenet1k_v2``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from faillite.profiler.format import VariantProfile
from faillite.zoo.manifest import FamilyManifest, load_manifest

__all__ = [
    "PublishedModel",
    "builtin_family_names",
    "builtin_manifest_path",
    "estimate_memory",
    "estimate_profile",
    "estimated_family_profiles",
    "estimated_manifest_profiles",
    "known_family_names",
    "load_builtin_family",
    "published_models",
    "standin_families",
]

_OTHER = "Other small (possible failover variants)"
_OTHER_SPLIT = [
    ("ShuffleNet", "ShuffleNet"),
    ("MNASNet", "MNASNet"),
    ("SqueezeNet", "SqueezeNet"),
    ("GoogLeNet", "GoogLeNet"),
    ("AlexNet", "AlexNet"),
    ("ResNeXt", "ResNeXt"),
    ("Wide_ResNet", "WideResNet"),
]


@dataclass(frozen=True)
class PublishedModel:
    """One row of the published table (torchvision docs). Accuracy is PUBLISHED."""

    family: str
    model: str
    weights: str
    acc1: float  # percent
    params: int
    macs: int  # torchvision's "GFLOPS" column counts multiply-accumulates
    file_mb: float
    eval_crop_px: int

    @property
    def variant(self) -> str:
        return f"{self.model}-{self.weights}".lower()

    @property
    def accuracy(self) -> float:
        return self.acc1 / 100.0


def _family_of(group: str, model: str) -> str:
    if group != _OTHER:
        return group
    for prefix, family in _OTHER_SPLIT:
        if model.startswith(prefix):
            return family
    return re.sub(r"[^A-Za-z]", "", model) or "Other"


@cache
def published_models() -> tuple[PublishedModel, ...]:
    text = resources.files("faillite.zoo").joinpath("data/published_imagenet1k.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return tuple(
        PublishedModel(
            family=_family_of(r["family"], r["model"]),
            model=r["model"],
            weights=r["weights"],
            acc1=float(r["acc1"]),
            params=round(float(r["params_m"]) * 1e6),
            macs=round(float(r["gflops"]) * 1e9),
            file_mb=float(r["file_mb"]),
            eval_crop_px=int(r["eval_crop_px"]),
        )
        for r in rows
    )


def standin_families() -> dict[str, tuple[PublishedModel, ...]]:
    """Published models grouped by family name, smallest first."""
    groups: dict[str, list[PublishedModel]] = {}
    for m in published_models():
        groups.setdefault(m.family, []).append(m)
    return {k: tuple(sorted(v, key=lambda m: (m.params, m.macs, m.variant))) for k, v in groups.items()}


def builtin_family_names() -> list[str]:
    root = resources.files("faillite.zoo").joinpath("families")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


def builtin_manifest_path(name: str) -> Path:
    path = Path(str(resources.files("faillite.zoo").joinpath("families", name, "manifest.json")))
    if not path.is_file():
        raise KeyError(f"no built-in family {name!r} (built-in: {', '.join(builtin_family_names())})")
    return path


def load_builtin_family(name: str, *, verify: bool = True) -> FamilyManifest:
    return load_manifest(builtin_manifest_path(name), verify=verify)


def known_family_names() -> list[str]:
    """Built-in trained families plus every stand-in family."""
    return sorted(set(builtin_family_names()) | set(standin_families()))


# Estimates used only when no measured profile is available (documented in docs/architecture.md).
# Calibrated on this class of machine (2 cores, ONNX Runtime CPU, one intra-op thread):
# loading costs about 2 ms per MB of weights plus a fixed 2 ms; inference runs about 25 GMAC/s
# per thread (stand-ins measured on 2026-11-28: 23-38 GMAC/s, 1-2.4 ms/MB to load; published-
# size stand-ins at 32 px on 2026-12-02: ResNet-152, 241 MB, 460-620 ms to load).
# Resident memory: the weights (the file) plus what the allocator keeps of the parse buffers,
# up to half the file, but never more than 32 MiB: glibc maps larger blocks and unmaps them on
# free. Measured RSS growth, session loaded on a worker thread as in the agent (2026-12-02):
# 5.5 MB file -> 6.1 MB, 21.9 -> 22.7, 46.8 -> 69.4, 102 -> 103, 241 -> 242, 791 -> 799. The
# former 1.5x for every size over-reserved large models by ~45 %; small files keep 1.5x + 1 MiB.
_LOAD_MS_PER_MB = 2.0
_LOAD_MS_FIXED = 2.0
_MEM_RETAINED = 0.5
_MEM_RETAINED_MAX = 32 << 20
_MEM_FIXED = 1 << 20
_MACS_PER_MS = 25e6


def estimate_memory(file_bytes: int) -> int:
    """Resident bytes a loaded session of a ``file_bytes`` model adds (see above)."""
    return int(file_bytes + min(_MEM_RETAINED * file_bytes, _MEM_RETAINED_MAX) + _MEM_FIXED)


def estimate_profile(
    family: str, variant: str, accuracy: float, file_bytes: int, macs: int, *, source: str
) -> VariantProfile:
    load_ms = _LOAD_MS_FIXED + _LOAD_MS_PER_MB * file_bytes / 1e6
    infer_ms = max(0.02, macs / _MACS_PER_MS)
    return VariantProfile(
        family=family,
        variant=variant,
        accuracy=accuracy,
        accuracy_source=source,  # type: ignore[arg-type]
        file_bytes=file_bytes,
        load_ms=round(load_ms, 3),
        memory_bytes=estimate_memory(file_bytes),
        first_infer_ms=round(infer_ms * 2, 3),
        infer_p50_ms=round(infer_ms, 3),
        infer_p99_ms=round(infer_ms * 1.5, 3),
    )


def estimated_manifest_profiles(manifest: FamilyManifest) -> tuple[VariantProfile, ...]:
    """Estimated profiles of the variants a manifest lists (their real file sizes and MACs)."""
    return tuple(
        estimate_profile(
            manifest.family, v.name, v.accuracy, v.file_bytes, v.flops, source=manifest.accuracy_source
        )
        for v in manifest.variants
    )


def estimated_family_profiles(family: str, *, scale: float = 1.0) -> tuple[VariantProfile, ...]:
    """Estimated profiles for every variant of a family (stand-ins at ``scale``).

    Accuracy of stand-ins is the published top-1; of built-in families, the measured one.
    """
    if family in builtin_family_names():
        return estimated_manifest_profiles(load_builtin_family(family, verify=False))
    models = standin_families().get(family)
    if models is None:
        raise KeyError(f"unknown family {family!r} (known: {', '.join(known_family_names())})")
    return tuple(
        estimate_profile(
            family, m.variant, m.accuracy, int(m.params * 4 * scale), int(m.macs * scale), source="published"
        )
        for m in models
    )
