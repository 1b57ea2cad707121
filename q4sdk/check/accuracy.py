"""Accuracy of the float model and of the integer program on a labelled data set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error
from q4sdk.ir.float_graph import FloatGraph
from q4sdk.ir.qmodel import QModel


def source_float_graph(
    model: QModel, override: str | Path | None = None, q4_path: str | Path | None = None
) -> tuple[FloatGraph | None, str]:
    """The float model a QModel was quantized from: ``override``, else ``meta["source_file"]`` (a file
    name, looked up beside ``q4_path`` and in the current folder) if that file still exists and its
    sha256 equals ``meta["source_hash"]``. Returns (graph or None, why)."""
    from q4sdk.frontend.onnx_import import load_onnx

    if override is not None:
        return load_onnx(override), f"float model {override}"
    src = model.meta.get("source_path") or model.meta.get("source_file")  # path (old files) or file name
    if not src:
        return None, "the .q4 file records no float model file (pass --float-model)"
    p = Path(src)
    if q4_path is not None and not p.is_file() and (Path(q4_path).parent / p.name).is_file():
        p = Path(q4_path).parent / p.name
    if not p.is_file():
        return None, f"float model {p} not found (pass --float-model)"
    if hashlib.sha256(p.read_bytes()).hexdigest() != model.meta.get("source_hash"):
        return None, f"float model {p} changed since quantization (pass --float-model)"
    return load_onnx(p), f"float model {p}"


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    logits = np.asarray(logits).reshape(len(labels), -1)
    return float((logits.argmax(axis=1) == labels).mean())


def check_labels(y: np.ndarray, n_classes: int, path) -> None:
    if y.min() < 0 or y.max() >= n_classes:
        raise Q4Error(
            f"{path}: field 'y' has labels outside [0, {n_classes}) for a model with {n_classes} outputs"
        )
