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
Widths are then solved so both totals land within a fraction of a percent of the targets.

Targets. ``scale`` multiplies the published parameter count. The MAC target depends on ``macs``:

- ``scaled`` (default): published MACs x scale — a uniformly shrunk model.
- ``input``: the real model's compute at ``input_px`` — published MACs x scale x
  (input_px / eval_crop_px)^2, eval_crop_px being the resolution the MACs were published at
  (224 for most; 380 for EfficientNet-B4, ...). Every weight is used at least once per sample,
  so the figure is floored at the parameter count (it binds for MobileNet-V3, ShuffleNet-0.5,
  MNASNet-0.5 and AlexNet at 32 px). With ``scale`` 1.0 this gives the published file size,
  resident memory and load time, at a compute a 2-core box can afford: e.g. ResNet-152 is
  60.2 M parameters (241 MB) and 0.235 GMACs at 32 px instead of 11.5 GMACs at 224.

Graphs over 1.5 GB (protobuf caps a file at 2 GB) keep their weights in ``<file>.data``,
written tensor by tensor so generation never holds the whole model in memory.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from faillite.zoo.catalog import PublishedModel, standin_families
from faillite.zoo.manifest import (
    SCHEMA,
    FamilyManifest,
    Signature,
    TensorSpec,
    VariantEntry,
    external_data_path,
    variant_bytes,
    variant_sha256,
    write_manifest,
)

__all__ = [
    "CLASSES",
    "INPUT_NAME",
    "MACS_MODES",
    "OUTPUT_NAME",
    "TASK",
    "Architecture",
    "MacsMode",
    "build_standin",
    "generate_family",
    "solve_architecture",
    "standin_signature",
    "target_macs",
]

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
CLASSES = 1000
TASK = "imagenet-1k-classification"  # every stand-in family shares the ImageNet-1k label space
MacsMode = Literal["scaled", "input"]
MACS_MODES: tuple[str, ...] = get_args(MacsMode)
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


def target_macs(model: PublishedModel, *, scale: float, input_px: int, macs: str = "scaled") -> int:
    """MACs per sample a stand-in of ``model`` aims at (see the module docstring)."""
    if macs == "scaled":
        return round(model.macs * scale)
    if macs == "input":
        at_input = model.macs * scale * (input_px / model.eval_crop_px) ** 2
        return round(max(at_input, model.params * scale))
    raise ValueError(f"macs must be one of {', '.join(MACS_MODES)} (got {macs!r})")


def solve_architecture(params: int, macs: int, input_px: int = 224) -> Architecture:
    """Widths whose parameter count and MACs match ``params`` and ``macs``.

    Every parameter costs at least one MAC here, so ``macs`` below ``params`` lands at about
    ``params``."""
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
    """Write the ONNX graph for ``arch`` with seeded He-initialised random weights.

    Files are written beside ``path`` and renamed into place, so a file hard-linked into a
    model repository is never rewritten under a running server."""
    import onnx
    from onnx import TensorProto, helper

    c, c2, h = arch.width, arch.head, arch.hidden
    path.parent.mkdir(parents=True, exist_ok=True)
    data = external_data_path(path)
    sink = _Weights(seed, data if arch.params * 4 > _EXTERNAL_DATA_BYTES else None)
    # Exactly side x side outputs even when side does not divide input_px (32 px, side 7):
    # stride px // side, and a kernel that covers the rest.
    stride = max(1, input_px // arch.side)
    kernel = max(1, input_px - (arch.side - 1) * stride)
    nodes = [
        helper.make_node(
            "AveragePool", [INPUT_NAME], ["x0"], kernel_shape=[kernel, kernel], strides=[stride, stride]
        )
    ]

    def conv(inp: str, out: str, cin: int, cout: int, k: int, tag: str) -> str:
        sink.random(f"{tag}_w", (cout, cin, k, k), cin * k * k)
        sink.zeros(f"{tag}_b", cout)
        nodes.append(
            helper.make_node(
                "Conv", [inp, f"{tag}_w", f"{tag}_b"], [f"{out}_pre"], kernel_shape=[k, k], pads=[k // 2] * 4
            )
        )
        nodes.append(helper.make_node("Relu", [f"{out}_pre"], [out]))
        return out

    try:
        x = conv("x0", "stem", 3, c, 3, "stem")
        for i in range(arch.layers):
            x = conv(x, f"l{i}", c, c, 3, f"l{i}")
        x = conv(x, "head", c, c2, 1, "head")
        sink.random("fc1_w", (c2, h), c2)
        sink.zeros("fc1_b", h)
        sink.random("fc2_w", (h, CLASSES), h, gain=0.5)
        sink.zeros("fc2_b", CLASSES)
    finally:
        sink.close()
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["fc1"]))
    nodes.append(helper.make_node("Relu", ["fc1"], ["fc1r"]))
    nodes.append(helper.make_node("Gemm", ["fc1r", "fc2_w", "fc2_b"], [OUTPUT_NAME]))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, input_px, input_px])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", CLASSES])],
    )
    model = helper.make_model(
        graph, producer_name="faillite-standin", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    # Moved in one at a time (make_graph/make_model would copy them twice): peak memory stays
    # near the model plus its serialised copy.
    while sink.tensors:
        model.graph.initializer.add().CopyFrom(sink.tensors.popleft())
    staged = path.with_name(path.name + ".tmp")
    onnx.save_model(model, str(staged))
    if sink.staged is not None:
        sink.staged.replace(data)
    elif data.exists():
        data.unlink()  # left by an earlier, larger build at this path
    staged.replace(path)


class _Weights:
    """Initializers, in the graph or streamed to an external data file one slice at a time."""

    _CHUNK = 1 << 24  # floats per generated slice (64 MB)
    _ALIGN = 4096  # page-aligned offsets let ONNX Runtime map the file

    def __init__(self, seed: int, external: Path | None) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: deque = deque()
        self.external = external
        self.staged = external.with_name(external.name + ".tmp") if external else None
        self._fh = self.staged.open("wb") if self.staged else None

    def random(self, name: str, shape: tuple[int, ...], fan_in: int, gain: float = 1.0) -> None:
        std = np.float32(gain * math.sqrt(2.0 / max(fan_in, 1)))
        if self._fh is None:
            w = self.rng.standard_normal(size=shape, dtype=np.float32)
            w *= std
            self._add(name, w)
            return
        rows, per_row = shape[0], math.prod(shape[1:])
        step = max(1, self._CHUNK // max(per_row, 1))

        def slices() -> Iterable[np.ndarray]:
            for first in range(0, rows, step):
                block = self.rng.standard_normal(size=(min(step, rows - first), per_row), dtype=np.float32)
                block *= std
                yield block

        self._stream(name, shape, slices())

    def zeros(self, name: str, n: int) -> None:
        if self._fh is None:
            self._add(name, np.zeros(n, np.float32))
        else:
            self._stream(name, (n,), [np.zeros(n, np.float32)])

    def _add(self, name: str, array: np.ndarray) -> None:
        from onnx import numpy_helper

        self.tensors.append(numpy_helper.from_array(array, name))

    def _stream(self, name: str, shape: tuple[int, ...], blocks: Iterable[np.ndarray]) -> None:
        from onnx import TensorProto

        assert self._fh is not None and self.external is not None
        offset = -(-self._fh.tell() // self._ALIGN) * self._ALIGN
        self._fh.seek(offset)
        length = 0
        for block in blocks:
            self._fh.write(block.tobytes())
            length += block.nbytes
        tensor = TensorProto(name=name, dims=shape, data_type=TensorProto.FLOAT)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.external.name), ("offset", offset), ("length", length)):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
        self.tensors.append(tensor)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


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
    macs: str = "scaled",
    models: Iterable[str] | None = None,
    progress: Callable[[str], None] = print,
) -> FamilyManifest:
    """Build the stand-ins of one family into ``out_dir`` and write its manifest.

    ``macs`` is ``scaled`` (published MACs x scale) or ``input`` (the real model's MACs at
    ``input_px``; see the module docstring). Files already present with the recorded sha256
    are kept, so calls are cheap when cached.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"--scale must be in (0, 1], got {scale}")
    if macs not in MACS_MODES:
        raise ValueError(f"--macs must be one of {', '.join(MACS_MODES)} (got {macs!r})")
    chosen = _selected([family], models)[family]
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_entries(out_dir / "manifest.json")
    stamps = _read_stamps(out_dir / _STAMPS)
    checked: dict[str, list[int | str]] = {}  # variant -> stamp, for files checked or built now
    entries = []
    for index, m in enumerate(chosen):
        target = target_macs(m, scale=scale, input_px=input_px, macs=macs)
        arch = solve_architecture(round(m.params * scale), target, input_px)
        file = out_dir / f"{m.variant}.onnx"
        cached = previous.get(m.variant)
        if (
            cached
            and file.is_file()
            and (cached.params, cached.flops) == (arch.params, arch.macs)
            and _still_verified(file, cached, stamps.get(cached.name))
        ):
            entries.append(cached)
            checked[cached.name] = _stamp(file, cached.sha256)
            continue
        progress(
            f"[{index + 1}/{len(chosen)}] {m.variant}: {arch.params / 1e6:.2f} M params "
            f"({arch.params * 4 / 1e6:.0f} MB), {arch.macs / 1e9:.3f} GMACs at {input_px} px "
            f"(published {m.params / 1e6:.2f} M, {m.macs / 1e9:.3f} G at {m.eval_crop_px} px; "
            f"scale {scale}, macs {macs})"
        )
        started = time.monotonic()
        build_standin(arch, file, input_px=input_px, seed=index, name=m.variant)
        entry = VariantEntry(
            name=m.variant,
            file=file.name,
            accuracy=m.accuracy,
            params=arch.params,
            flops=arch.macs,
            file_bytes=variant_bytes(file),
            sha256=variant_sha256(file),
            published_model=f"torchvision {m.model} {m.weights}",
        )
        entries.append(entry)
        checked[entry.name] = _stamp(file, entry.sha256)
        if entry.file_bytes >= 50_000_000:
            progress(f"      wrote {entry.file_bytes / 1e6:.0f} MB in {time.monotonic() - started:.1f} s")
    # Keep earlier builds of this family's other models (a --model subset must not forget them).
    built = {e.name for e in entries}
    kept = [e for name, e in previous.items() if name not in built and (out_dir / e.file).is_file()]
    order = {m.variant: i for i, m in enumerate(standin_families()[family])}
    entries = sorted(entries + kept, key=lambda e: order.get(e.name, len(order)))
    manifest = FamilyManifest.model_validate(
        {
            "schema": SCHEMA,
            "family": family,
            "task": TASK,
            "accuracy_source": "published",
            "accuracy_note": (
                "PUBLISHED ImageNet-1K top-1 of the torchvision weights each stand-in imitates; "
                f"stand-in graphs have random weights, scale {scale}, input {input_px}px, macs {macs}"
            ),
            "signature": standin_signature(input_px),
            "variants": entries,
        }
    )
    write_manifest(manifest, out_dir / "manifest.json")
    # Entries kept from earlier calls keep their stamp only while it still holds.
    for e in kept:
        if stamps.get(e.name) == _stamp(out_dir / e.file, e.sha256):
            checked[e.name] = stamps[e.name]
    _write_stamps(out_dir / _STAMPS, checked)
    return manifest.model_copy(update={"directory": out_dir})


# Hashing every file on every resolve costs ~20 s per 10 GB at scale 1.0, paid by each process
# that resolves a family. A file whose size, inode and mtime are those recorded right after
# its sha256 was checked here is the same file (builds are renamed into place, so a rebuild
# changes the inode), and is not hashed again.
_STAMPS = ".verified.json"


def _stamp(file: Path, sha256: str) -> list[int | str]:
    stamp: list[int | str] = [sha256]
    for path in (file, external_data_path(file)):
        if path.is_file():
            st = path.stat()
            stamp += [st.st_size, st.st_ino, st.st_mtime_ns]
    return stamp


def _still_verified(file: Path, entry: VariantEntry, stamp: list[int | str] | None) -> bool:
    if stamp is not None and stamp == _stamp(file, entry.sha256):
        return True
    return entry.file_bytes == variant_bytes(file) and entry.sha256 == variant_sha256(file)


def _read_stamps(path: Path) -> dict[str, list[int | str]]:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_stamps(path: Path, stamps: dict[str, list[int | str]]) -> None:
    import json

    staged = path.with_name(path.name + ".tmp")
    staged.write_text(json.dumps(stamps, indent=1) + "\n")
    staged.replace(path)


def _previous_entries(path: Path) -> dict[str, VariantEntry]:
    from faillite.zoo.manifest import ManifestError, load_manifest

    if not path.is_file():
        return {}
    try:
        return {v.name: v for v in load_manifest(path, verify=False).variants}
    except ManifestError:
        return {}
