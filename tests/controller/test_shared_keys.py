"""Which families may share a warm fallback: keys from manifests, built-ins and stand-ins."""

from __future__ import annotations

from pathlib import Path

from faillite.controller.planning import build_families
from faillite.controller.shared import fallback_keys
from faillite.zoo.catalog import builtin_manifest_path, estimated_family_profiles


def test_standins_share_a_key_digits_has_its_own_unknown_families_none() -> None:
    keys = fallback_keys((), ["ResNet", "MobileNet", "digits", "mystery"])
    assert keys["ResNet"] is not None and keys["ResNet"] == keys["MobileNet"]
    assert keys["digits"] is not None and keys["digits"] != keys["ResNet"]
    assert keys["mystery"] is None
    # a stand-in of another input size has another signature, so another key
    assert fallback_keys((), ["ResNet"], standin_px=32)["ResNet"] != keys["ResNet"]


def test_a_manifest_given_wins_and_reaches_the_families(tmp_path: Path) -> None:
    manifest = builtin_manifest_path("digits")
    keys = fallback_keys([manifest.parent], ["digits", "ResNet"])
    assert keys["digits"] == fallback_keys((), ["digits"])["digits"]
    families = build_families(estimated_family_profiles("ResNet", scale=0.02), keys)
    assert families["ResNet"].task == keys["ResNet"]
