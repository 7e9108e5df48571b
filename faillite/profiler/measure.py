"""Measure a variant on this machine: load time, resident memory, first and steady latency.

Each variant is measured in a fresh child process, so that the memory it adds is not hidden
by what an earlier variant left in the allocator, and the first inference really is the
first one of that process.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

__all__ = ["Measurement", "measure_model", "sample_inputs"]

_NUMPY_DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


@dataclass(frozen=True)
class Measurement:
    load_ms_samples: tuple[float, ...]
    memory_bytes: int
    first_infer_ms: float
    infer_ms_samples: tuple[float, ...]

    @property
    def load_ms(self) -> float:
        return statistics.median(self.load_ms_samples)

    def infer_percentile(self, q: float) -> float:
        ordered = sorted(self.infer_ms_samples)
        index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[index]


def sample_inputs(
    inputs: list[tuple[str, str, tuple[int, ...]]], batch: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random tensors for (name, OIP datatype, shape) inputs; -1 dimensions become ``batch``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, datatype, shape in inputs:
        dims = tuple(batch if d < 0 else d for d in shape)
        dtype = _NUMPY_DTYPES.get(datatype)
        if dtype is None:
            raise ValueError(f"cannot generate sample data for input {name!r} of type {datatype}")
        feeds[name] = (rng.random(dims) * 16).astype(dtype)
    return feeds


def _rss() -> int:
    import psutil

    return int(psutil.Process(os.getpid()).memory_info().rss)


def _identity_model() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "warmup",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _measure_in_child(path: str, loads: int, runs: int, batch: int, threads: int) -> Measurement:
    import onnxruntime as ort

    from faillite.zoo.manifest import onnx_signature

    signature = onnx_signature(Path(path))
    feeds = sample_inputs([(s.name, s.datatype, s.shape) for s in signature.inputs], batch)

    def options() -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False  # footprint follows the model, as in the agent
        return opts

    # Warm ONNX Runtime's process-wide state with a trivial graph first: a serving agent has
    # paid that once already, so it must not be charged to the model.
    ort.InferenceSession(_identity_model(), options(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.zeros(1, np.float32)}
    )
    gc.collect()
    before = _rss()
    start = time.perf_counter()
    session = ort.InferenceSession(path, options(), providers=["CPUExecutionProvider"])
    load_samples = [(time.perf_counter() - start) * 1000]
    memory = max(0, _rss() - before)
    start = time.perf_counter()
    session.run(None, feeds)
    first = (time.perf_counter() - start) * 1000
    infer = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        infer.append((time.perf_counter() - start) * 1000)
    for _ in range(loads - 1):
        start = time.perf_counter()
        extra = ort.InferenceSession(path, options(), providers=["CPUExecutionProvider"])
        load_samples.append((time.perf_counter() - start) * 1000)
        del extra
    return Measurement(tuple(load_samples), memory, first, tuple(infer))


def measure_model(
    path: Path, *, loads: int = 5, runs: int = 50, batch: int = 1, threads: int = 1
) -> Measurement:
    """Measure one ONNX file in a fresh process (``loads`` >= 1 loads, ``runs`` >= 1 inferences)."""
    if loads < 1 or runs < 1:
        raise ValueError("loads and runs must be at least 1")
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_measure_in_child, str(path), loads, runs, batch, threads).result()
