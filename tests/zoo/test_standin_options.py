"""Published-size stand-ins at a small input: MAC targets, the solver, the graph, external data,
the cache key, and the option in the cluster file and on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from faillite.launch.config import ClusterConfigError, load_cluster_config
from faillite.zoo import standins
from faillite.zoo.cache import standin_dir
from faillite.zoo.catalog import published_models, standin_families
from faillite.zoo.manifest import ManifestError, load_manifest, variant_bytes
from faillite.zoo.standins import (
    Architecture,
    build_standin,
    generate_family,
    solve_architecture,
    target_macs,
)


def _model(variant: str):  # type: ignore[no-untyped-def]
    return next(m for m in published_models() if m.variant == variant)


def test_input_macs_scale_with_the_resolution_the_figures_were_published_at() -> None:
    r152 = _model("resnet152-imagenet1k_v2")  # 60.19 M params, 11.514 GMACs at 224 px
    assert target_macs(r152, scale=1.0, input_px=32, macs="input") == round(11.514e9 / 49)
    assert target_macs(r152, scale=0.5, input_px=32, macs="input") == round(11.514e9 * 0.5 / 49)
    assert target_macs(r152, scale=0.5, input_px=32, macs="scaled") == round(11.514e9 * 0.5)
    # EfficientNet-B4's MACs are published at 380 px, not 224.
    b4 = _model("efficientnet_b4-imagenet1k_v1")
    assert target_macs(b4, scale=1.0, input_px=380, macs="input") == b4.macs
    assert target_macs(b4, scale=1.0, input_px=38, macs="input") == round(b4.macs / 100)
    # Every weight is used at least once: MobileNet-V3-Small at 32 px is floored at its params.
    small = _model("mobilenet_v3_small-imagenet1k_v1")
    assert small.macs * (32 / 224) ** 2 < small.params
    assert target_macs(small, scale=1.0, input_px=32, macs="input") == small.params
    with pytest.raises(ValueError, match="macs must be one of scaled, input"):
        target_macs(small, scale=1.0, input_px=32, macs="resolution")


@pytest.mark.parametrize("input_px", [32, 64])
def test_every_published_model_at_full_size_and_small_input_lands_within_one_percent(input_px: int) -> None:
    for m in published_models():
        macs = target_macs(m, scale=1.0, input_px=input_px, macs="input")
        arch = solve_architecture(m.params, macs, input_px)
        assert arch.side <= input_px, m.variant
        assert arch.params == pytest.approx(m.params, rel=0.01), m.variant
        assert arch.macs == pytest.approx(macs, rel=0.01), (m.variant, arch)


def test_resnet152_at_32px_keeps_its_weight_and_sheds_its_compute() -> None:
    m = _model("resnet152-imagenet1k_v2")
    arch = solve_architecture(m.params, target_macs(m, scale=1.0, input_px=32, macs="input"), 32)
    assert arch.params * 4 == pytest.approx(240.8e6, rel=0.01)  # the published 230 MiB file
    assert arch.macs == pytest.approx(0.235e9, rel=0.01)


def _graph_macs(path: Path) -> tuple[int, int]:
    """(params, MACs per sample) counted from the graph itself, after shape inference."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    dims = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(model.graph.value_info) + list(model.graph.output)
    }
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            cout, cin, k, _ = weights[node.input[1]]
            _, _, oh, ow = dims[node.output[0]]
            macs += oh * ow * cout * cin * k * k
        elif node.op_type == "Gemm":
            cin, cout = weights[node.input[1]]
            macs += cin * cout
    return sum(int(np.prod(w)) for w in weights.values()), macs


@pytest.mark.parametrize("side", [7, 14, 28])
def test_graph_computes_the_solved_macs_when_side_does_not_divide_the_input(
    tmp_path: Path, side: int
) -> None:
    arch = Architecture(side=side, width=8, layers=2, head=16, hidden=32)
    path = tmp_path / "m.onnx"
    build_standin(arch, path, input_px=32)
    assert _graph_macs(path) == (arch.params, arch.macs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": np.ones((1, 3, 32, 32), np.float32)})
    assert out.shape == (1, 1000)


def test_large_graphs_stream_their_weights_to_external_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(standins, "_EXTERNAL_DATA_BYTES", 100_000)  # as if over protobuf's 2 GB cap
    quiet: list[str] = []
    manifest = generate_family(
        "MobileNet", tmp_path, scale=0.02, input_px=32, macs="input", models=["mobilenet_v3_small"],
        progress=quiet.append,
    )  # fmt: skip
    (entry,) = manifest.variants
    graph, data = tmp_path / entry.file, tmp_path / (entry.file + ".data")
    assert data.is_file() and graph.stat().st_size < 10_000
    assert entry.file_bytes == variant_bytes(graph) == graph.stat().st_size + data.stat().st_size
    assert data.stat().st_size >= entry.params * 4
    assert _graph_macs(graph) == (entry.params, entry.flops)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": np.ones((2, 3, 32, 32), np.float32)})
    assert out.shape == (2, 1000) and np.isfinite(out).all()
    assert load_manifest(tmp_path / "manifest.json").variants == manifest.variants
    # The external weights are part of the verified unit.
    with data.open("r+b") as fh:
        fh.seek(8192)
        fh.write(b"\x01\x02\x03\x04")
    with pytest.raises(ManifestError, match="sha256"):
        load_manifest(tmp_path / "manifest.json")
    # A build that no longer needs external data removes the old weights file.
    monkeypatch.setattr(standins, "_EXTERNAL_DATA_BYTES", 1 << 40)
    generate_family("MobileNet", tmp_path, scale=0.02, input_px=32, macs="input", progress=quiet.append)
    assert not data.exists()
    load_manifest(tmp_path / "manifest.json")


def test_mac_mode_is_recorded_and_keyed(tmp_path: Path) -> None:
    quiet: list[str] = []
    kwargs = {"scale": 0.02, "input_px": 32, "models": ["resnet50-imagenet1k_v2"], "progress": quiet.append}
    scaled = generate_family("ResNet", tmp_path / "s", **kwargs)  # type: ignore[arg-type]
    at_input = generate_family("ResNet", tmp_path / "i", macs="input", **kwargs)  # type: ignore[arg-type]
    m = _model("resnet50-imagenet1k_v2")
    assert scaled.variants[0].flops == pytest.approx(m.macs * 0.02, rel=0.01)
    assert at_input.variants[0].flops == pytest.approx(m.macs * 0.02 * (32 / 224) ** 2, rel=0.01)
    for manifest in (scaled, at_input):
        assert manifest.variants[0].params == pytest.approx(m.params * 0.02, rel=0.01)
    assert "macs input" in at_input.accuracy_note and at_input.task == "imagenet-1k-classification"
    with pytest.raises(ValueError, match="--macs must be one of scaled, input"):
        generate_family("ResNet", tmp_path / "x", macs="resolution", **kwargs)  # type: ignore[arg-type]
    dirs = {standin_dir("ResNet", 1.0, 32, tmp_path, macs=mode) for mode in ("scaled", "input")}
    assert len(dirs) == 2
    assert standin_dir("ResNet", 1.0, 32, tmp_path) == standin_dir("ResNet", 1.0, 32, tmp_path, macs="scaled")


def _cluster_file(tmp_path: Path, standins_line: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "nodes:\n  - {id: a, memory: 512MiB}\n  - {id: b, memory: 512MiB}\n" + standins_line + "\n"
    )
    return path


def test_cluster_file_takes_the_mac_mode(tmp_path: Path) -> None:
    config = load_cluster_config(_cluster_file(tmp_path, "standins: {scale: 1.0, input_px: 32, macs: input}"))
    assert (config.standins.scale, config.standins.input_px, config.standins.macs) == (1.0, 32, "input")
    assert load_cluster_config(_cluster_file(tmp_path, "")).standins.macs == "scaled"
    with pytest.raises(ClusterConfigError, match=r"standins\.macs: Input should be 'scaled' or 'input'"):
        load_cluster_config(_cluster_file(tmp_path, "standins: {macs: resolution}"))


def test_cli_builds_input_mac_standins_into_their_own_cache(tmp_path: Path) -> None:
    env = {**os.environ, "FAILLITE_CACHE": str(tmp_path)}
    args = [sys.executable, "-m", "faillite", "zoo", "standins", "--family", "ShuffleNet"]
    args += ["--model", "shufflenet_v2_x0_5", "--scale", "0.05", "--input-px", "32", "--macs", "input"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert "macs input" in done.stdout
    path = tmp_path / "standins" / "r2" / "scale-0.05-px32-macs-input" / "ShuffleNet" / "manifest.json"
    assert load_manifest(path).variants[0].params == pytest.approx(1.37e6 * 0.05, rel=0.01)
    bad = subprocess.run(
        [*args[:-1], "resolution"], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert bad.returncode == 2 and "invalid choice: 'resolution'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert set(standin_families()) >= {"ShuffleNet"}


def test_a_changed_file_is_rebuilt_even_with_a_verification_stamp(tmp_path: Path) -> None:
    said: list[str] = []
    kwargs = {
        "scale": 0.02,
        "input_px": 32,
        "macs": "input",
        "models": ["mnasnet0_5"],
        "progress": said.append,
    }
    first = generate_family("MNASNet", tmp_path, **kwargs)  # type: ignore[arg-type]
    assert (tmp_path / ".verified.json").is_file() and len(said) == 1
    generate_family("MNASNet", tmp_path, **kwargs)  # type: ignore[arg-type]
    assert len(said) == 1  # unchanged: trusted, not rebuilt
    file = tmp_path / first.variants[0].file
    blob = bytearray(file.read_bytes())
    blob[-3] ^= 0xFF  # same size, other content
    file.write_bytes(bytes(blob))
    again = generate_family("MNASNet", tmp_path, **kwargs)  # type: ignore[arg-type]
    assert len(said) == 2 and again.variants == first.variants  # rebuilt, deterministically
    load_manifest(tmp_path / "manifest.json")
