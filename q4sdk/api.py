"""The Python API: one call from a float model and calibration data to a quantized ``QModel``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error
from q4sdk.ir.float_graph import FloatGraph
from q4sdk.ir.qmodel import QModel
from q4sdk.progress import Progress
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe, preset


def load_float_model(model, example_input=None) -> FloatGraph:
    """ONNX path / ``onnx.ModelProto`` / ``torch.nn.Module`` (+ example input) / FloatGraph -> FloatGraph."""
    if isinstance(model, FloatGraph):
        return model
    if isinstance(model, (str, Path)):
        from q4sdk.frontend.onnx_import import load_onnx

        return load_onnx(model)
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            if example_input is None:
                raise Q4Error("a PyTorch module needs an example input (example_input=...)")
            from q4sdk.frontend.torch_import import from_torch

            return from_torch(model, example_input, name=type(model).__name__.lower())
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        import onnx

        if isinstance(model, onnx.ModelProto):
            from q4sdk.frontend.onnx_import import import_onnx_model

            return import_onnx_model(model, name=model.graph.name or "model")
    except ImportError:  # pragma: no cover
        pass
    raise Q4Error(
        f"cannot quantize an object of type {type(model).__name__}: pass an ONNX path, "
        "an onnx.ModelProto or a torch.nn.Module"
    )


def quantize(
    model,
    calib,
    *,
    activations: int | str = 8,
    unsigned_activations: bool | None = None,
    recipe: Recipe | dict | None = None,
    example_input=None,
    progress: bool = False,
) -> QModel:
    """Quantize a float model post-training to INT4 weights and INT4/INT8 activations.

    ``calib``: float array [N, *input_shape] in the model's input layout. ``activations``: 4, 8,
    "int4" or "int8". ``recipe`` overrides everything else when given.
    """
    if isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    if recipe is None:
        bits = int(str(activations).lower().removeprefix("int"))
        recipe = preset("default", bits)  # the same recipe as the command line's default
    if unsigned_activations is not None:
        recipe.unsigned_activations = unsigned_activations
    calib = np.asarray(calib, np.float32)
    if example_input is None and len(calib):
        example_input = calib[:1]
    graph = load_float_model(model, example_input)
    if isinstance(model, (str, Path)):
        graph_path = str(Path(model).resolve())
    else:
        graph_path = None
    qm = quantize_graph(graph, calib, recipe, Progress("quantize", enabled=progress))
    if graph_path:
        qm.meta["source_file"] = Path(graph_path).name  # no absolute path: same bytes on any machine
    return qm
