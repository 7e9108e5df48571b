"""Family manifests: validation catches missing files, sha mismatches and differing signatures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from faillite.zoo.catalog import builtin_manifest_path, load_builtin_family
from faillite.zoo.manifest import ManifestError, load_manifest, sha256_file
from faillite.zoo.standins import generate_family


@pytest.fixture
def digits_copy(tmp_path: Path) -> Path:
    source = builtin_manifest_path("digits").parent
    dest = tmp_path / "digits"
    shutil.copytree(source, dest)
    return dest / "manifest.json"


def _edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_builtin_digits_manifest_verifies() -> None:
    manifest = load_builtin_family("digits")
    assert manifest.family == "digits"
    assert manifest.accuracy_source == "measured"
    assert len(manifest.variants) >= 4
    for entry in manifest.variants:
        assert sha256_file(manifest.path_of(entry.name)) == entry.sha256


def test_missing_file_is_named(digits_copy: Path) -> None:
    (digits_copy.parent / "digits-mlp-8.onnx").unlink()
    with pytest.raises(ManifestError, match=r"variant digits-mlp-8: file .*digits-mlp-8.onnx is missing"):
        load_manifest(digits_copy)


def test_sha_mismatch_is_named(digits_copy: Path) -> None:
    target = digits_copy.parent / "digits-mlp-16.onnx"
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(ManifestError, match=r"variant digits-mlp-16: file is \d+ bytes, manifest says"):
        load_manifest(digits_copy)


def test_differing_signature_is_named(digits_copy: Path) -> None:
    import onnx

    # Same weights, but the input is called "pixels": the family signature says "input".
    target = digits_copy.parent / "digits-mlp-4.onnx"
    model = onnx.load(str(target))
    model.graph.input[0].name = "pixels"
    model.graph.node[0].input[0] = "pixels"
    onnx.save(model, str(target))
    _edit(
        digits_copy,
        lambda d: [
            v.update(file_bytes=target.stat().st_size, sha256=sha256_file(target))
            for v in d["variants"]
            if v["name"] == "digits-mlp-4"
        ],
    )
    with pytest.raises(ManifestError, match=r"variant digits-mlp-4: signature \(pixels:FP32\[-1, 64\]\)"):
        load_manifest(digits_copy)


def test_malformed_manifest_names_field(digits_copy: Path) -> None:
    _edit(digits_copy, lambda d: d["variants"][0].update(accuracy=1.7))
    with pytest.raises(ManifestError, match=r"variants\.0\.accuracy"):
        load_manifest(digits_copy)


def test_invalid_json_names_line(digits_copy: Path) -> None:
    digits_copy.write_text('{"family": "digits",\n  oops}')
    with pytest.raises(ManifestError, match=r"invalid JSON at line 2"):
        load_manifest(digits_copy)


def test_duplicate_variant_names_rejected(digits_copy: Path) -> None:
    _edit(digits_copy, lambda d: d["variants"].append(dict(d["variants"][0])))
    with pytest.raises(ManifestError, match="duplicate variant names: digits-mlp-4"):
        load_manifest(digits_copy)


def test_standin_manifest_is_published_and_verifies(tmp_path: Path) -> None:
    manifest = generate_family(
        "MobileNet", tmp_path, scale=0.01, input_px=32, models=["mobilenet_v3_small"], progress=lambda _: None
    )
    loaded = load_manifest(tmp_path / "manifest.json")
    assert loaded.accuracy_source == "published"
    assert [v.name for v in loaded.variants] == ["mobilenet_v3_small-imagenet1k_v1"]
    assert loaded.variants[0].accuracy == pytest.approx(0.67668)
    assert manifest.signature == loaded.signature
