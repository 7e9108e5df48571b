"""Stand-in models: ONNX graphs with a published model's parameter count and compute.

A stand-in lets the system feel a real model's weight — file size, load time, resident memory
and inference latency — without downloading weights. Its accuracy is the PUBLISHED ImageNet
top-1 of the model it stands in for, never a measured one.

Graph (one shared signature per family: ``images`` FP32 [-1, 3, px, px] -> ``logits`` FP32
[-1, 1000])::

    AveragePool to side x side -> Conv3x3(3->C) -> L x (Conv3x3(C->C), ReLU)
    -> Conv1x1(C->C2), ReLU -> GlobalAveragePool -> Gemm(C2->H), ReLU -> Gemm(H->1000)

Convolutions run at every one of the side*side positions, so each conv parameter costs S =
side^2 multiply-accumulates while a dense parameter costs one. With P parameters and M MACs
the conv part therefore holds Pc = (M - P) / (S - 1) parameters and the dense part the rest;
``side`` is the smallest of a few sizes that leaves the dense part at least a fifth of P.
Widths are then solved so both totals land within a fraction of a percent of the published
figures (``--scale`` multiplies both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faillite.zoo.catalog import PublishedModel, standin_families
from faillite.zoo.manifest import (
    SCHEMA,
    FamilyManifest,
    Signature,
    TensorSpec,
    VariantEntry,
    sha256_file,
    write_manifest,
)

__all__ = [
    "CLASSES",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "Architecture",
    "build_standin",
    "generate_family",
    "solve_architecture",
    "standin_signature",
]

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
CLASSES = 1000
_SIDES = (7, 8, 14, 16, 28, 32, 56, 112)
_EXTERNAL_DATA_BYTES = 1_500_000_000  # protobuf caps a single file at 2 GB


@dataclass(frozen=True)
class Architecture:
    side: int
    width: int  # C
    layers: int  # L 3x3 convs C->C
    head: int  # C2
    hidden: int  # H

    @property
    def params(self) -> int:
        c, c2, h = self.width, self.head, self.hidden
        return (
            (27 * c + c)
            + self.layers * (9 * c * c + c)
            + (c * c2 + c2)
            + (c2 * h + h)
            + (h * CLASSES + CLASSES)
        )

    @property
    def macs(self) -> int:
        c, c2, h, s = self.width, self.head, self.hidden, self.side * self.side
        return s * (27 * c + self.layers * 9 * c * c + c * c2) + c2 * h + h * CLASSES


def solve_architecture(params: int, macs: int, input_px: int = 224) -> Architecture:
    """Widths whose parameter count and MACs match ``params`` and ``macs``."""
    if params <= 0 or macs <= 0:
        raise ValueError(f"params and macs must be positive (got {params}, {macs})")
    ratio = macs / params
    sides = [s for s in _SIDES if s <= input_px] or [1]
    side = next((s for s in sides if s * s >= 1.25 * ratio), sides[-1])
    area = side * side
    conv_params = max(0.0, (macs - params) / (area - 1)) if area > 1 else 0.0
    conv_params = min(conv_params, 0.8 * params)
    width = max(4, int(math.sqrt(max(conv_params, 1.0) / 36)))  # about four 3x3 layers
    stem = 28 * width
    layers = max(0, int((conv_params - stem) // (9 * width * width + width)))
    remainder = conv_params - stem - layers * (9 * width * width + width)
    head = max(1, round(remainder / (width + 1)))
    conv_actual = stem + layers * (9 * width * width + width) + width * head + head
    dense = params - conv_actual
    hidden = max(1, round((dense - CLASSES) / (head + 1 + CLASSES)))
    return Architecture(side=side, width=width, layers=layers, head=head, hidden=hidden)


def standin_signature(input_px: int = 224) -> Signature:
    return Signature(
        inputs=(TensorSpec(name=INPUT_NAME, datatype="FP32", shape=(-1, 3, input_px, input_px)),),
        outputs=(TensorSpec(name=OUTPUT_NAME, datatype="FP32", shape=(-1, CLASSES)),),
    )


def build_standin(
    arch: Architecture, path: Path, *, input_px: int = 224, seed: int = 0, name: str = "standin"
) -> None:
    """Write the ONNX graph for ``arch`` with seeded He-initialised random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        w = rng.standard_normal(size=shape, dtype=np.float32)
        w *= np.float32(math.sqrt(2.0 / max(fan_in, 1)))
        return w

    c, c2, h = arch.width, arch.head, arch.hidden
    pool = max(1, input_px // arch.side)
    inits = []
    nodes = [
        helper.make_node("AveragePool", [INPUT_NAME], ["x0"], kernel_shape=[pool, pool], strides=[pool, pool])
    ]

    def conv(inp: str, out: str, cin: int, cout: int, k: int, tag: str, relu: bool) -> str:
        inits.append(numpy_helper.from_array(weight((cout, cin, k, k), cin * k * k), f"{tag}_w"))
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{tag}_b"))
        pads = [k // 2] * 4
        target = f"{out}_pre" if relu else out
        nodes.append(
            helper.make_node("Conv", [inp, f"{tag}_w", f"{tag}_b"], [target], kernel_shape=[k, k], pads=pads)
        )
        if relu:
            nodes.append(helper.make_node("Relu", [target], [out]))
        return out

    x = conv("x0", "stem", 3, c, 3, "stem", relu=True)
    for i in range(arch.layers):
        x = conv(x, f"l{i}", c, c, 3, f"l{i}", relu=True)
    x = conv(x, "head", c, c2, 1, "head", relu=True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    inits.append(numpy_helper.from_array(weight((c2, h), c2), "fc1_w"))
    inits.append(numpy_helper.from_array(np.zeros(h, np.float32), "fc1_b"))
    inits.append(numpy_helper.from_array(weight((h, CLASSES), h) * np.float32(0.5), "fc2_w"))
    inits.append(numpy_helper.from_array(np.zeros(CLASSES, np.float32), "fc2_b"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["fc1"]))
    nodes.append(helper.make_node("Relu", ["fc1"], ["fc1r"]))
    nodes.append(helper.make_node("Gemm", ["fc1r", "fc2_w", "fc2_b"], [OUTPUT_NAME]))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, input_px, input_px])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, producer_name="faillite-standin", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    if arch.params * 4 > _EXTERNAL_DATA_BYTES:
        data = path.with_name(path.name + ".data")
        if data.exists():
            data.unlink()
        onnx.save_model(
            model, str(path), save_as_external_data=True, location=data.name, all_tensors_to_one_file=True
        )
    else:
        onnx.save_model(model, str(path))


def _selected(
    families: Iterable[str] | None, models: Iterable[str] | None
) -> dict[str, list[PublishedModel]]:
    catalog = standin_families()
    wanted_models = {m.lower() for m in models or []}
    chosen: dict[str, list[PublishedModel]] = {}
    for family in families or catalog:
        if family not in catalog:
            raise KeyError(f"unknown stand-in family {family!r} (known: {', '.join(sorted(catalog))})")
        for m in catalog[family]:
            if not wanted_models or m.variant in wanted_models or m.model.lower() in wanted_models:
                chosen.setdefault(family, []).append(m)
    if wanted_models:
        found = {m.variant for ms in chosen.values() for m in ms} | {
            m.model.lower() for ms in chosen.values() for m in ms
        }
        missing = sorted(wanted_models - found)
        if missing:
            raise KeyError(f"unknown published model(s): {', '.join(missing)}")
    return chosen


def generate_family(
    family: str,
    out_dir: Path,
    *,
    scale: float = 1.0,
    input_px: int = 224,
    models: Iterable[str] | None = None,
    progress: Callable[[str], None] = print,
) -> FamilyManifest:
    """Build the stand-ins of one family into ``out_dir`` and write its manifest.

    Files already present with the recorded sha256 are kept, so calls are cheap when cached.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"--scale must be in (0, 1], got {scale}")
    chosen = _selected([family], models)[family]
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_entries(out_dir / "manifest.json")
    entries = []
    for index, m in enumerate(chosen):
        arch = solve_architecture(round(m.params * scale), round(m.macs * scale), input_px)
        file = out_dir / f"{m.variant}.onnx"
        cached = previous.get(m.variant)
        if cached and file.is_file() and cached.params == arch.params and cached.sha256 == sha256_file(file):
            entries.append(cached)
            continue
        progress(
            f"[{index + 1}/{len(chosen)}] {m.variant}: {arch.params / 1e6:.2f} M params, "
            f"{arch.macs / 1e9:.3f} GMACs (published {m.params / 1e6:.2f} M, {m.macs / 1e9:.3f} G"
            f" x scale {scale})"
        )
        build_standin(arch, file, input_px=input_px, seed=index, name=m.variant)
        entries.append(
            VariantEntry(
                name=m.variant,
                file=file.name,
                accuracy=m.accuracy,
                params=arch.params,
                flops=arch.macs,
                file_bytes=file.stat().st_size,
                sha256=sha256_file(file),
                published_model=f"torchvision {m.model} {m.weights}",
            )
        )
    # Keep earlier builds of this family's other models (a --model subset must not forget them).
    built = {e.name for e in entries}
    kept = [e for name, e in previous.items() if name not in built and (out_dir / e.file).is_file()]
    order = {m.variant: i for i, m in enumerate(standin_families()[family])}
    entries = sorted(entries + kept, key=lambda e: order.get(e.name, len(order)))
    manifest = FamilyManifest.model_validate(
        {
            "schema": SCHEMA,
            "family": family,
            "accuracy_source": "published",
            "accuracy_note": (
                "PUBLISHED ImageNet-1K top-1 of the torchvision weights each stand-in imitates; "
                f"stand-in graphs have random weights, scale {scale}, input {input_px}px"
            ),
            "signature": standin_signature(input_px),
            "variants": entries,
        }
    )
    write_manifest(manifest, out_dir / "manifest.json")
    return manifest.model_copy(update={"directory": out_dir})


def _previous_entries(path: Path) -> dict[str, VariantEntry]:
    from faillite.zoo.manifest import ManifestError, load_manifest

    if not path.is_file():
        return {}
    try:
        return {v.name: v for v in load_manifest(path, verify=False).variants}
    except ManifestError:
        return {}
