"""The digits family: a real model ladder trained here on scikit-learn's handwritten digits.

The data set ships inside scikit-learn (1,797 8x8 images, pixel values 0-16), so nothing is
downloaded. The split is fixed and seeded; ``heldout_split`` reproduces it anywhere and
``split_digest`` lets tests prove it is the split the manifest's accuracies were measured on.

Each variant is a multi-layer perceptron exported to ONNX with one shared signature:
``input`` FP32 [-1, 64] (raw pixel values 0-16) -> ``probabilities`` FP32 [-1, 10].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DATASET",
    "INPUT_NAME",
    "LADDER",
    "OUTPUT_NAME",
    "SPLIT_SEED",
    "TEST_SIZE",
    "DigitsVariant",
    "heldout_split",
    "mlp_to_onnx",
    "split_digest",
    "train_split",
]

DATASET = "sklearn.datasets.load_digits"
SPLIT_SEED = 20261128
TEST_SIZE = 0.3
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class DigitsVariant:
    name: str
    hidden: tuple[int, ...]
    seed: int = 0


# Widths chosen so accuracy climbs from ~0.92 to ~0.98 (measured values live in the manifest).
LADDER: tuple[DigitsVariant, ...] = (
    DigitsVariant("digits-mlp-4", (4,)),
    DigitsVariant("digits-mlp-8", (8,)),
    DigitsVariant("digits-mlp-16", (16,)),
    DigitsVariant("digits-mlp-64", (64,)),
    DigitsVariant("digits-mlp-256x128", (256, 128)),
)


def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y
    )
    return (
        x_train.astype(np.float32),
        x_test.astype(np.float32),
        y_train.astype(np.int64),
        y_test.astype(np.int64),
    )


def train_split() -> tuple[np.ndarray, np.ndarray]:
    x_train, _, y_train, _ = _split()
    return x_train, y_train


def heldout_split() -> tuple[np.ndarray, np.ndarray]:
    """Held-out inputs (float32 [n, 64], pixel values 0-16) and labels (int64 [n])."""
    _, x_test, _, y_test = _split()
    return x_test, y_test


def split_digest(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return digest.hexdigest()


def mlp_to_onnx(weights: list[np.ndarray], biases: list[np.ndarray], name: str) -> bytes:
    """Serialize an MLP (ReLU hidden layers, softmax output) as an ONNX graph.

    The input scaling (pixels / 16) the network was trained with is part of the graph, so
    clients send raw pixel values.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Mul", [INPUT_NAME, "scale"], ["h0"])]
    inits = [numpy_helper.from_array(np.array([1.0 / 16.0], dtype=np.float32), "scale")]
    current = "h0"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"W{i}"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"B{i}"))
        out = f"z{i}"
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"B{i}"], [out]))
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"a{i}"]))
            current = f"a{i}"
        else:
            current = out
    nodes.append(helper.make_node("Softmax", [current], [OUTPUT_NAME], axis=1))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="faillite", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime we support
    onnx.checker.check_model(model)
    return model.SerializeToString()
