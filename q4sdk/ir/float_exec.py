"""Float reference executor: runs a FloatGraph with torch.nn.functional (float32, CPU).

``FLOAT_FUNCTIONS`` is the one float interpreter: ``run_float`` runs graph nodes through it and the
quantizer (``q4sdk.ptq.pipeline._forward``) runs its fused steps through it with overridden
weights.
"""

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
        raise Q4Error(
            f"input: expected shape [N, {', '.join(map(str, graph.input_shape))}], got {list(x.shape)}"
        )
    x = graph.held_input(x)
    keep = [n.output for n in graph.nodes] if capture else [graph.output_name]
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in keep}
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            values = {graph.input_name: torch.from_numpy(x[start : start + batch_size])}
            for node in graph.nodes:
                values[node.output] = run_node(node, [values[t] for t in node.inputs])
            for name in keep:
                chunks[name].append(values[name].numpy())
    arrays = {
        name: np.concatenate(parts) if parts else np.zeros((0, *graph.shapes[name]), np.float32)
        for name, parts in chunks.items()
    }
    return (arrays[graph.output_name], arrays) if capture else arrays[graph.output_name]


def _pad(x: torch.Tensor, pads, value: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = pads
    return F.pad(x, (left, right, top, bottom), value=value) if any(pads) else x


def _param(params: dict, key: str) -> torch.Tensor:
    return torch.as_tensor(params[key], dtype=torch.float32)


def conv2d(xs, a: dict, params: dict) -> torch.Tensor:
    """Symmetric padding goes to the convolution, other padding is applied first."""
    t, l, b, r = a.get("pads", (0, 0, 0, 0))
    x, padding = (xs[0], (t, l)) if (t, l) == (b, r) else (_pad(xs[0], (t, l, b, r)), (0, 0))
    return F.conv2d(
        x,
        _param(params, "weight"),
        _param(params, "bias"),
        stride=tuple(a.get("stride", (1, 1))),
        padding=padding,
        dilation=tuple(a.get("dilation", (1, 1))),
        groups=int(a.get("groups", 1)),
    )


def fully_connected(xs, a: dict, params: dict) -> torch.Tensor:
    return F.linear(xs[0].flatten(1), _param(params, "weight"), _param(params, "bias"))


def avgpool(xs, a: dict, params: dict) -> torch.Tensor:
    x, kernel, stride = xs[0], tuple(a["kernel"]), tuple(a["stride"])
    pads = a.get("pads", (0, 0, 0, 0))
    sums = F.avg_pool2d(_pad(x, pads), kernel, stride)
    if "count_pads" in a:  # divide by the taps inside the input grown by count_pads
        ones = _pad(torch.ones_like(x[:1, :1]), a["count_pads"], 1.0)
        grow = [p - c for p, c in zip(pads, a["count_pads"])]
        return sums / F.avg_pool2d(_pad(ones, grow), kernel, stride)
    if a.get("count_include_pad", True) or not any(pads):
        return sums
    counts = F.avg_pool2d(_pad(torch.ones_like(x[:1, :1]), pads), kernel, stride)
    return sums / counts


def maxpool(xs, a: dict, params: dict) -> torch.Tensor:
    return F.max_pool2d(
        _pad(xs[0], a.get("pads", (0, 0, 0, 0)), -float("inf")), tuple(a["kernel"]), tuple(a["stride"])
    )


#: unary functions of the ``unary`` float op (attr ``fn``), for float32 or float64 tensors
UNARY_FUNCTIONS = {
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "hard_sigmoid": lambda x, a: torch.clamp(a["alpha"] * x + a["beta"], 0.0, 1.0),
    "hard_swish": lambda x, a: x * torch.clamp(x / 6 + 0.5, 0.0, 1.0),
    "leaky_relu": lambda x, a: torch.where(x >= 0, x, a["alpha"] * x),
    "silu": lambda x, a: x * torch.sigmoid(x),
    "gelu": lambda x, a: 0.5 * x * (1.0 + torch.erf(x * 0.7071067811865476)),
}


def unary(xs, a: dict, params: dict) -> torch.Tensor:
    return UNARY_FUNCTIONS[a["fn"]](xs[0], a)


def prelu(xs, a: dict, params: dict) -> torch.Tensor:
    """x where x >= 0, slope[c] x elsewhere; channels are axis 1 (N, C, H, W) or (N, F)."""
    x = xs[0]
    slope = torch.as_tensor(params["slope"], dtype=x.dtype).reshape(1, -1, *[1] * (x.dim() - 2))
    return torch.where(x >= 0, x, slope * x)


def conv_transpose(xs, a: dict, params: dict) -> torch.Tensor:
    """The weight is [O, I, kh, kw] (float_graph); torch wants [I, O, kh, kw]. Pads crop the full
    output (top, left, bottom, right); output_padding extends it at the bottom / right."""
    t, l, b, r = a.get("pads", (0, 0, 0, 0))
    oh, ow = a.get("output_padding", (0, 0))
    y = F.conv_transpose2d(
        xs[0], _param(params, "weight").transpose(0, 1), _param(params, "bias"), stride=tuple(a["stride"])
    )
    # the full output has (H - 1) sh + kh rows; rows beyond it (output padding past the bottom
    # pad) see no input: they hold the bias alone
    full_h, full_w = y.shape[2], y.shape[3]
    out_h, out_w = full_h - t - b + oh, full_w - l - r + ow
    extra_h, extra_w = max(0, t + out_h - full_h), max(0, l + out_w - full_w)
    if extra_h or extra_w:
        bias = _param(params, "bias").reshape(1, -1, 1, 1)
        y = F.pad(y - bias, (0, extra_w, 0, extra_h)) + bias
    return y[:, :, t : t + out_h, l : l + out_w]


def resize(xs, a: dict, params: dict) -> torch.Tensor:
    """Integer up-sampling: nearest repeats each pixel, bilinear uses half-pixel centres
    (align_corners=False, as torch and ONNX half_pixel)."""
    sh, sw = (int(v) for v in a["scale"])
    if a["mode"] == "nearest":
        return xs[0].repeat_interleave(sh, dim=2).repeat_interleave(sw, dim=3)
    return F.interpolate(xs[0], scale_factor=(float(sh), float(sw)), mode="bilinear", align_corners=False)


#: float op -> f(inputs, attrs, params): the float semantics of every op of the float graph
FLOAT_FUNCTIONS = {
    "conv2d": conv2d,
    "fully_connected": fully_connected,
    "relu": lambda xs, a, params: F.relu(xs[0]),
    "clamp": lambda xs, a, params: torch.clamp(xs[0], a["lo"], a["hi"]),
    "add": lambda xs, a, params: xs[0] + xs[1],
    "avgpool": avgpool,
    "maxpool": maxpool,
    "global_avgpool": lambda xs, a, params: xs[0].mean(dim=(2, 3), keepdim=True),
    "reshape": lambda xs, a, params: (
        xs[0].reshape(len(xs[0]), *a["shape"]) if "shape" in a else xs[0].flatten(1)
    ),
    "pad": lambda xs, a, params: _pad(xs[0], a["pads"]),
    "unary": unary,
    "concat": lambda xs, a, params: torch.cat(xs, dim=1 + a.get("axis", 0)),  # default: channels / features
    "gather": lambda xs, a, params: torch.index_select(
        xs[0], 1 + a["axis"], torch.as_tensor(a["index"], dtype=torch.long)
    ),
    "mul": lambda xs, a, params: xs[0] * xs[1],  # (N, C, 1, 1) broadcasts over H, W
    "sub": lambda xs, a, params: xs[1] - xs[0] if a.get("reversed") else xs[0] - xs[1],
    "prelu": prelu,
    "conv_transpose": conv_transpose,
    "resize": resize,
    "reduce_mean": lambda xs, a, params: xs[0].mean(dim=[1 + i for i in a["axes"]], keepdim=True),
    "softmax": lambda xs, a, params: torch.softmax(xs[0], dim=1 + a["axis"]),
}
#: float ops that are activations only (the quantizer fuses them into the op before)
ACTIVATIONS = ("relu", "clamp")


def run_node(node: FloatNode, inputs: list[torch.Tensor]) -> torch.Tensor:
    if node.op not in FLOAT_FUNCTIONS:
        raise Q4Error(f"node '{node.name}': unknown float op '{node.op}'")
    return FLOAT_FUNCTIONS[node.op](inputs, node.attrs, node.params)
