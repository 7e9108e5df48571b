"""The planner's memory estimate against the RSS a real ONNX Runtime session adds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from faillite.zoo.catalog import estimate_memory
from faillite.zoo.standins import build_standin, solve_architecture

# Loads the model the way the agent does (warm runtime, no arena, one thread, on a worker
# thread) and prints the resident bytes the session added.
_CHILD = r"""
import gc, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np, onnxruntime as ort, psutil
from faillite.profiler.measure import _identity_model

def options():
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads, o.enable_cpu_mem_arena = 1, 1, False
    return o

ort.InferenceSession(_identity_model(), options(), providers=["CPUExecutionProvider"]).run(
    None, {"x": np.zeros(1, np.float32)}
)
gc.collect()
before = psutil.Process().memory_info().rss
with ThreadPoolExecutor(1) as pool:
    session = pool.submit(
        ort.InferenceSession, sys.argv[1], options(), providers=["CPUExecutionProvider"]
    ).result()
session.run(None, {"images": np.zeros((1, 3, 32, 32), np.float32)})
print(psutil.Process().memory_info().rss - before)
"""


def test_estimate_covers_a_large_model_without_reserving_half_again(tmp_path: Path) -> None:
    path = tmp_path / "big.onnx"
    build_standin(solve_architecture(40_000_000, 160_000_000, 32), path, input_px=32)
    size = path.stat().st_size
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    grew = int(done.stdout.strip().splitlines()[-1])
    assert grew >= 0.95 * size  # the weights are resident
    assert grew <= estimate_memory(size) <= 1.3 * grew, (size, grew, estimate_memory(size))


@pytest.mark.parametrize("size", [3_000, 2_000_000, 60_000_000])
def test_small_files_keep_the_former_estimate(size: int) -> None:
    assert estimate_memory(size) == int(1.5 * size + (1 << 20))
