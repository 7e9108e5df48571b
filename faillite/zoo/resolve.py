"""Turn what a user typed — a family name, a variant name, or a manifest path — into a loaded,
verified family manifest, generating stand-ins into the cache when needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from faillite.zoo.cache import standin_dir
from faillite.zoo.catalog import builtin_family_names, load_builtin_family, standin_families
from faillite.zoo.manifest import FamilyManifest, load_manifest
from faillite.zoo.standins import generate_family

__all__ = ["ResolveError", "family_of_variant", "resolve"]


class ResolveError(LookupError):
    """Nothing in the zoo answers to that name."""


def family_of_variant(variant: str) -> str | None:
    for family in builtin_family_names():
        if any(v.name == variant for v in load_builtin_family(family, verify=False).variants):
            return family
    for family, models in standin_families().items():
        if any(m.variant == variant.lower() for m in models):
            return family
    return None


def resolve(
    target: str,
    *,
    scale: float = 1.0,
    input_px: int = 224,
    macs: str = "scaled",
    cache_root: Path | None = None,
    progress: Callable[[str], None] = print,
) -> tuple[FamilyManifest, list[str] | None]:
    """Return (manifest, variants) for ``target``; variants is None for "all of them".

    ``target`` may be a manifest file or a directory holding ``manifest.json``, a family name
    (``digits``, ``ResNet``), ``family/variant``, or a bare variant name. ``scale``,
    ``input_px`` and ``macs`` say how stand-in families are generated (see
    ``faillite.zoo.standins``); they do not apply to built-in families or manifest paths.
    """
    path = Path(target)
    if path.suffix == ".json" or path.is_dir():
        manifest_path = path / "manifest.json" if path.is_dir() else path
        return load_manifest(manifest_path), None
    family, _, variant = target.partition("/")
    if not variant and family not in builtin_family_names() and family not in standin_families():
        owner = family_of_variant(family)
        if owner is None:
            known = sorted(set(builtin_family_names()) | set(standin_families()))
            raise ResolveError(f"no family or variant named {target!r} (families: {', '.join(known)})")
        family, variant = owner, family
    if family in builtin_family_names():
        manifest = load_builtin_family(family)
    elif family in standin_families():
        out = standin_dir(family, scale, input_px, cache_root, macs=macs)
        generate_family(family, out, scale=scale, input_px=input_px, macs=macs, progress=progress)
        # generate_family has just checked every file against its sha256 (or built it), so the
        # manifest is read without hashing gigabytes a second time.
        manifest = load_manifest(out / "manifest.json", verify=False)
    else:
        known = sorted(set(builtin_family_names()) | set(standin_families()))
        raise ResolveError(f"no family named {family!r} (families: {', '.join(known)})")
    if variant:
        try:
            manifest.variant(variant.lower() if family in standin_families() else variant)
        except KeyError as exc:
            raise ResolveError(str(exc.args[0])) from exc
        return manifest, [variant.lower() if family in standin_families() else variant]
    return manifest, None
