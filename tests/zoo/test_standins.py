"""Stand-ins match the published parameter counts and MACs, and are real runnable graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from faillite.zoo.catalog import published_models, standin_families
from faillite.zoo.standins import build_standin, generate_family, solve_architecture


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_every_published_model_is_matched_within_one_percent(scale: float) -> None:
    for m in published_models():
        arch = solve_architecture(round(m.params * scale), round(m.macs * scale))
        assert arch.params == pytest.approx(m.params * scale, rel=0.01), m.variant
        assert arch.macs == pytest.approx(m.macs * scale, rel=0.01), m.variant


def test_tiny_scale_stays_close() -> None:
    for m in published_models():
        arch = solve_architecture(round(m.params * 0.01), round(m.macs * 0.01))
        assert arch.params == pytest.approx(m.params * 0.01, rel=0.05), m.variant
        assert arch.macs == pytest.approx(m.macs * 0.01, rel=0.05), m.variant


def test_built_graph_has_the_solved_parameter_count(tmp_path: Path) -> None:
    arch = solve_architecture(2_000_000, 300_000_000)
    path = tmp_path / "m.onnx"
    build_standin(arch, path, input_px=224)
    model = onnx.load(str(path))
    params = sum(int(np.prod(init.dims)) for init in model.graph.initializer)
    assert params == arch.params
    assert path.stat().st_size >= params * 4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": np.random.default_rng(0).random((2, 3, 224, 224), np.float32)})
    assert out.shape == (2, 1000)
    assert np.isfinite(out).all() and float(np.abs(out).mean()) > 0


def test_generation_is_cached_and_keeps_other_models(tmp_path: Path) -> None:
    quiet: list[str] = []
    generate_family("ResNet", tmp_path, scale=0.01, input_px=32, models=["resnet18"], progress=quiet.append)
    first = (tmp_path / "resnet18-imagenet1k_v1.onnx").stat().st_mtime_ns
    generate_family("ResNet", tmp_path, scale=0.01, input_px=32, models=["resnet34"], progress=quiet.append)
    manifest = generate_family(
        "ResNet", tmp_path, scale=0.01, input_px=32, models=["resnet18"], progress=quiet.append
    )
    assert [v.name for v in manifest.variants] == ["resnet18-imagenet1k_v1", "resnet34-imagenet1k_v1"]
    assert (tmp_path / "resnet18-imagenet1k_v1.onnx").stat().st_mtime_ns == first
    assert len(quiet) == 2  # the third call rebuilt nothing


def test_catalog_groups_other_small_models_by_architecture() -> None:
    families = standin_families()
    assert "Other small (possible failover variants)" not in families
    assert {"ShuffleNet", "MNASNet", "SqueezeNet", "ResNet", "ViT", "EfficientNet"} <= set(families)
    assert all(m.accuracy < 1 for ms in families.values() for m in ms)


def test_unknown_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown published model"):
        generate_family("ResNet", tmp_path, scale=0.01, models=["resnet9000"], progress=lambda _: None)
    with pytest.raises(ValueError, match="scale"):
        generate_family("ResNet", tmp_path, scale=2.0, progress=lambda _: None)
