"""Shared warm fallbacks on the controller's side (policy ``faillite-shared``).

The planner places them (``faillite.placement.shared``); the reconcile loop keeps them loaded
(``decide``); routes list them as a warm fallback of each app they serve (``cluster``); and on
a node's death each of its apps without a warm backup switches to its shared fallback at once
(``policy.failover``, ``policy.serving.shared_replica``), while its own backup loads.

Which families may share is their manifests' business: ``faillite.zoo.manifest.fallback_key``
(same task, same input/output signature). The controller reads the manifests it is given
(``--manifests``); a built-in family (digits) it finds in the package by name, a stand-in family
by the stand-ins' task and signature. Any other family without a manifest shares nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from faillite.zoo.catalog import builtin_family_names, load_builtin_family, standin_families
from faillite.zoo.manifest import FamilyManifest, ManifestError, fallback_key, load_manifest

__all__ = ["fallback_keys"]

log = logging.getLogger("faillite.controller")


def fallback_keys(
    manifests: Iterable[Path], families: Iterable[str], *, standin_px: int = 224
) -> dict[str, str | None]:
    """Each family's fallback key: from the manifest files given, else the built-in manifest,
    else, for a stand-in family of the zoo, the stand-ins' task and signature at ``standin_px``
    (all stand-ins of one cluster share an input size, so their keys agree)."""
    keys: dict[str, str | None] = {}
    for path in manifests:
        manifest = load_manifest(path / "manifest.json" if path.is_dir() else path, verify=False)
        keys[manifest.family] = fallback_key(manifest)
    builtin = set(builtin_family_names())
    standins = set(standin_families())
    for name in families:
        if name in keys:
            continue
        if name in standins:
            from faillite.zoo.standins import TASK, standin_signature  # numpy and onnx: only when needed

            # only the task and signature matter to the key: no files, so no validation
            shape = FamilyManifest.model_construct(
                family=name, task=TASK, signature=standin_signature(standin_px)
            )
            keys[name] = fallback_key(shape)
        elif name in builtin:
            try:
                keys[name] = fallback_key(load_builtin_family(name, verify=False))
            except ManifestError as exc:  # a broken package: share nothing, say why
                log.warning("family %s: no fallback key (%s)", name, exc)
                keys[name] = None
        else:
            keys[name] = None
    return keys
