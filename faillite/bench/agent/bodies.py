"""Request bodies, encoded once up front (so the client's CPU goes into HTTP, not into JSON),
and a decoder for answers (to check every path gives in-process ONNX Runtime's outputs)."""

from __future__ import annotations

import json

import numpy as np

__all__ = ["HEADER_LENGTH", "Body", "binary_body", "decode_answer", "json_body"]

HEADER_LENGTH = "Inference-Header-Content-Length"
Body = tuple[bytes, dict[str, str]]


def json_body(batch: np.ndarray) -> Body:
    request = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": list(batch.shape), "data": batch.ravel().tolist()}
        ],
        "outputs": [{"name": "probabilities"}],
    }
    return json.dumps(request).encode(), {"Content-Type": "application/json"}


def binary_body(batch: np.ndarray) -> Body:
    blob = batch.astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(batch.shape),
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + blob, {HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"}


def decode_answer(data: bytes, header_length: str | None) -> np.ndarray:
    """The ``probabilities`` output of an OIP answer, JSON or binary."""
    if header_length is None:
        out = json.loads(data)["outputs"][0]
        return np.array(out["data"], np.float32).reshape(out["shape"])
    split = int(header_length)
    out = json.loads(data[:split])["outputs"][0]
    return np.frombuffer(data[split:], np.float32).reshape(out["shape"])
