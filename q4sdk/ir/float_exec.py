"""Float reference executor: runs a FloatGraph with torch.nn.functional (float32, CPU)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from q4sdk.errors import Q4Error
from q4sdk.ir.float_graph import FloatGraph, FloatNode


def run_float(graph: FloatGraph, x: np.ndarray, capture: bool = False, batch_size: int = 256):
    """Run ``graph`` on ``x`` of shape ``[N, *graph.input_shape]`` (logical NCHW / NF layout).

    Returns the output array ``[N, *out_shape]``, or ``(output, {tensor: array})`` holding every
    node output when ``capture`` is true. Works in batches of ``batch_size`` samples.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != tuple(graph.input_shape):
        raise Q4Error(f"input: expected shape [N, {', '.join(map(str, graph.input_shape))}], "
                      f"got {list(x.shape)}")
    keep = [n.output for n in graph.nodes] if capture else [graph.output_name]
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in keep}
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            values = {graph.input_name: torch.from_numpy(x[start:start + batch_size])}
            for node in graph.nodes:
                values[node.output] = run_node(node, [values[t] for t in node.inputs])
            for name in keep:
                chunks[name].append(values[name].numpy())
    arrays = {name: np.concatenate(parts) if parts else np.zeros((0, *graph.shapes[name]), np.float32)
              for name, parts in chunks.items()}
    return (arrays[graph.output_name], arrays) if capture else arrays[graph.output_name]


def _pad(x: torch.Tensor, pads, value: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = pads
    return F.pad(x, (left, right, top, bottom), value=value) if any(pads) else x


def run_node(node: FloatNode, inputs: list[torch.Tensor]) -> torch.Tensor:
    a, op = node.attrs, node.op
    x = inputs[0]
    if op == "conv":
        weight, bias = (torch.from_numpy(node.params[k]) for k in ("weight", "bias"))
        return F.conv2d(_pad(x, a["pads"]), weight, bias, stride=tuple(a["stride"]),
                        dilation=tuple(a.get("dilation", (1, 1))), groups=a["groups"])
    if op == "dense":
        return F.linear(x, torch.from_numpy(node.params["weight"]), torch.from_numpy(node.params["bias"]))
    if op == "relu":
        return F.relu(x)
    if op == "clip":
        return torch.clamp(x, a["lo"], a["hi"])
    if op == "add":
        return x + inputs[1]
    if op == "avgpool":
        kernel, stride = tuple(a["kernel"]), tuple(a["stride"])
        sums = F.avg_pool2d(_pad(x, a["pads"]), kernel, stride)
        if a["count_include_pad"] or not any(a["pads"]):
            return sums
        counts = F.avg_pool2d(_pad(torch.ones_like(x[:1, :1]), a["pads"]), kernel, stride)
        return sums / counts
    if op == "maxpool":
        return F.max_pool2d(_pad(x, a["pads"], -float("inf")), tuple(a["kernel"]), tuple(a["stride"]))
    if op == "gap":
        return x.mean(dim=(2, 3), keepdim=True)
    if op == "flatten":
        return x.reshape(x.shape[0], -1)
    if op == "pad":
        return _pad(x, a["pads"])
    raise Q4Error(f"node '{node.name}': unknown float op '{op}'")
