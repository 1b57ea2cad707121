"""PyTorch module -> FloatGraph, by way of an in-memory ONNX export."""

from __future__ import annotations

import inspect
import io
import warnings

import onnx

from q4sdk.errors import Q4Error
from q4sdk.frontend.onnx_import import import_onnx_model
from q4sdk.ir.float_graph import FloatGraph

EXPORT_OPSET = 17


def from_torch(module, example_input, name: str = "model") -> FloatGraph:
    """Export ``module`` (in eval mode) to ONNX with a dynamic batch and import it.

    ``example_input`` is a float tensor or array shaped ``[N, C, H, W]`` or ``[N, F]``; only its
    per-sample shape matters. The module's training flag is restored afterwards.
    """
    import torch  # deferred: importing the ONNX frontend alone should not pay for torch

    x = torch.as_tensor(example_input).detach().to(torch.float32).cpu()
    if x.ndim not in (2, 3, 4):  # rank 3 is exported so the importer can list what is unsupported
        raise Q4Error(f"{name}: example input must be [N, C, H, W] or [N, F], got shape {list(x.shape)}")
    options = dict(
        opset_version=EXPORT_OPSET,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
        do_constant_folding=True,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the TorchScript exporter gives plain, predictable opset-17 graphs
    buffer = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), buffer, **options)
    except Exception as err:  # the exporter raises many unrelated exception types
        message = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise Q4Error(f"{name}: PyTorch ONNX export failed ({message})") from err
    finally:
        module.train(was_training)
    return import_onnx_model(onnx.load_from_string(buffer.getvalue()), name)
