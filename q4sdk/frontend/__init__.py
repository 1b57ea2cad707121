"""Frontends: turn an ONNX file or a PyTorch module into a :class:`q4sdk.ir.float_graph.FloatGraph`."""

from q4sdk.frontend.onnx_import import (
    Issue,
    UnsupportedModel,
    check_onnx_model,
    import_onnx_model,
    load_onnx,
    supported_op_types,
)
from q4sdk.frontend.torch_import import from_torch

__all__ = [
    "Issue",
    "UnsupportedModel",
    "check_onnx_model",
    "from_torch",
    "import_onnx_model",
    "load_onnx",
    "supported_op_types",
]
