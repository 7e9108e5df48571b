"""Small ONNX models built with onnx.helper for agent tests, placed in a Triton-style repository."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["ALL_TYPES", "add_model", "big_model", "gather_model", "place", "types_model"]

# OIP datatype -> (ONNX element type, numpy dtype) for every datatype the agent serves.
ALL_TYPES: dict[str, tuple[int, np.dtype]] = {
    "BOOL": (TensorProto.BOOL, np.dtype(bool)),
    "UINT8": (TensorProto.UINT8, np.dtype(np.uint8)),
    "UINT16": (TensorProto.UINT16, np.dtype(np.uint16)),
    "UINT32": (TensorProto.UINT32, np.dtype(np.uint32)),
    "UINT64": (TensorProto.UINT64, np.dtype(np.uint64)),
    "INT8": (TensorProto.INT8, np.dtype(np.int8)),
    "INT16": (TensorProto.INT16, np.dtype(np.int16)),
    "INT32": (TensorProto.INT32, np.dtype(np.int32)),
    "INT64": (TensorProto.INT64, np.dtype(np.int64)),
    "FP16": (TensorProto.FLOAT16, np.dtype(np.float16)),
    "FP32": (TensorProto.FLOAT, np.dtype(np.float32)),
    "FP64": (TensorProto.DOUBLE, np.dtype(np.float64)),
    "BYTES": (TensorProto.STRING, np.dtype(object)),
}


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def place(repo: Path, name: str, model: onnx.ModelProto, meta: dict | None = None) -> Path:
    """Write ``model`` as ``repo/name/1/model.onnx`` (and ``faillite.json`` when given)."""
    version_dir = repo / name / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(version_dir / "model.onnx"))
    if meta is not None:
        (repo / name / "faillite.json").write_text(json.dumps(meta))
    return repo / name


def add_model(width: int = 4) -> onnx.ModelProto:
    """``x`` FP32 [-1, width] -> ``plus_one`` = x + 1 and ``doubled`` = 2x."""
    one = numpy_helper.from_array(np.ones((width,), np.float32), "one")
    two = numpy_helper.from_array(np.full((width,), 2.0, np.float32), "two")
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "one"], ["plus_one"]),
            helper.make_node("Mul", ["x", "two"], ["doubled"]),
        ],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [
            helper.make_tensor_value_info("plus_one", TensorProto.FLOAT, ["batch", width]),
            helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["batch", width]),
        ],
        [one, two],
    )
    return _model(graph)


def types_model() -> onnx.ModelProto:
    """For every datatype, ``in_<DT>`` [-1, 2] passed through to ``out_<DT>``."""
    nodes, inputs, outputs = [], [], []
    for name, (elem, _) in ALL_TYPES.items():
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["batch", 2]))
    return _model(helper.make_graph(nodes, "types", inputs, outputs))


def big_model(megabytes: int) -> onnx.ModelProto:
    """``x`` FP32 [-1, 256] @ a random weight of about ``megabytes`` MiB -> ``y``."""
    columns = megabytes * (1 << 20) // (4 * 256)
    weight = np.random.default_rng(0).standard_normal((256, columns), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", columns])],
        [numpy_helper.from_array(weight, "w")],
    )
    return _model(graph)


def gather_model() -> onnx.ModelProto:
    """``indices`` INT64 [-1] picks rows of a 4x2 table -> ``rows``: out-of-range indices pass
    the OIP checks and are refused by ONNX Runtime itself."""
    table = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "indices"], ["rows"], axis=0)],
        "gather",
        [helper.make_tensor_value_info("indices", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 2])],
        [table],
    )
    return _model(graph)
