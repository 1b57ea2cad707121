"""Frontends: turn an ONNX file or a PyTorch module into a :class:`q4sdk.ir.float_graph.FloatGraph`."""
from q4sdk.frontend.onnx_import import import_onnx_model, load_onnx
from q4sdk.frontend.torch_import import from_torch

__all__ = ["from_torch", "import_onnx_model", "load_onnx"]
