"""Family manifests: validation catches missing files, sha mismatches and differing signatures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from faillite.zoo.catalog import builtin_manifest_path, load_builtin_family
from faillite.zoo.manifest import FamilyManifest, ManifestError, fallback_key, load_manifest, sha256_file
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


def _family(task: str | None, *, px: int = 32, classes: int = 1000, dtype: str = "FP32") -> FamilyManifest:
    return FamilyManifest.model_validate(
        {
            "family": "f",
            "task": task,
            "accuracy_source": "published",
            "signature": {
                "inputs": [{"name": "images", "datatype": dtype, "shape": [-1, 3, px, px]}],
                "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, classes]}],
            },
            "variants": [
                {"name": "v", "file": "v.onnx", "accuracy": 0.5, "params": 1, "flops": 1, "file_bytes": 1,
                 "sha256": "0" * 64}
            ],
        }
    )  # fmt: skip


def test_fallback_key_needs_the_same_task_and_signature() -> None:
    key = fallback_key(_family("imagenet-1k-classification"))
    assert key is not None and key == fallback_key(_family("imagenet-1k-classification"))
    for other in [
        _family("imagenet-21k-classification"),
        _family("imagenet-1k-classification", px=64),
        _family("imagenet-1k-classification", classes=1001),
        _family("imagenet-1k-classification", dtype="FP16"),
    ]:
        assert fallback_key(other) is not None and fallback_key(other) != key
    assert fallback_key(_family(None)) is None


def test_standin_families_share_a_fallback_key_and_digits_has_its_own(tmp_path: Path) -> None:
    quiet: list[str] = []
    shuffle = generate_family("ShuffleNet", tmp_path / "s", scale=0.01, input_px=32, progress=quiet.append)
    mnas = generate_family("MNASNet", tmp_path / "m", scale=0.01, input_px=32, progress=quiet.append)
    wider = generate_family(
        "MNASNet", tmp_path / "w", scale=0.01, input_px=40, models=["mnasnet0_5"], progress=quiet.append
    )
    digits = load_builtin_family("digits")
    assert shuffle.task == mnas.task == "imagenet-1k-classification"
    assert fallback_key(shuffle) == fallback_key(mnas)
    assert fallback_key(load_manifest(tmp_path / "m" / "manifest.json")) == fallback_key(shuffle)
    assert fallback_key(wider) != fallback_key(mnas)  # another input size: not interchangeable
    assert digits.task == "digits-10" and fallback_key(digits) not in {None, fallback_key(shuffle)}


def test_manifest_without_task_still_loads(digits_copy: Path) -> None:
    _edit(digits_copy, lambda d: d.pop("task"))
    manifest = load_manifest(digits_copy)
    assert manifest.task is None and fallback_key(manifest) is None
    _edit(digits_copy, lambda d: d.update(task="has spaces"))
    with pytest.raises(ManifestError, match="task"):
        load_manifest(digits_copy)
