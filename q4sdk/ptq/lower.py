"""Lowering: the quantizer's result (planned steps, activation quantization, quantized weights)
-> the integer ``QModel``.

Per kind, ``LOWERINGS`` gives the integer attrs and arrays of the op a step becomes; weighted
layers get INT4 weights in the stored layout, int32 bias and fixed-point requantization
(``_lower_weights``); ``residual_split`` ops are inserted where a residual-quantized activation
feeds a layer (``_split_ops``). Tensors are stored channels-last (``_stored_shape``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from q4sdk.errors import Q4Error
from q4sdk.ir import fixedpoint
from q4sdk.ir.float_exec import unary
from q4sdk.ir.float_graph import FloatGraph
from q4sdk.ir.ops import OPS, RESIZE_MODES
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.ptq import numerics
from q4sdk.ptq.plan import Step
from q4sdk.ptq.recipe import Recipe
from q4sdk.ptq.weights import int_range

if TYPE_CHECKING:
    from q4sdk.ptq.pipeline import LayerWeights, QuantParams


def residual_name(tensor: str) -> str:
    """Name of the second (residual) INT4 tensor of a residual-quantized tensor."""
    return tensor + "__residual"


def fine_zero_point(coarse_zero_point: int, bits: int) -> int:
    """Zero point of the 8-bit fine-grid tensor F of a residual-quantized activation whose coarse
    tensor X1 has ``bits`` bits and ``coarse_zero_point``: the one that makes the 256 codes of F
    exactly the pairs (X1, X2) (docs/integer-spec.md, residual_split)."""
    half = 1 << (bits - 1)
    return half - 128 - (1 << bits) * (-half - coarse_zero_point)


def coarse_zero_point(fine_zero_point_: int, bits: int) -> int:
    """Inverse of ``fine_zero_point``."""
    half = 1 << (bits - 1)
    return (fine_zero_point_ - half + 128) // (1 << bits) - half


def _stored_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape)


def _act_limits(act, out: QuantParams) -> tuple[int, int]:
    lo, hi = int_range(out.bits)
    if act is not None:
        if act[0] > float("-inf"):
            lo = max(lo, out.zero_point + int(np.ceil(act[0] / out.scale - 1e-9)))
        if act[1] < float("inf"):
            hi = min(hi, out.zero_point + int(np.floor(act[1] / out.scale + 1e-9)))
    return lo, min(max(lo, hi), int_range(out.bits)[1])


def _lower_weights(step: Step, lw: LayerWeights, in_scales: list[float], sy: float) -> dict[str, np.ndarray]:
    """Integer weights, bias and requantization of a conv / dense step.

    ``in_scales`` has one scale per input term (two for a residual-quantized input); with a dual
    weight the layer has len(in_scales) * 2 terms, all requantized with one rounding.
    """
    numerics.fit_bias(step, lw, in_scales, sy)  # dead / tiny kernels, huge biases
    arrays: dict[str, np.ndarray] = {}
    for key, (q, _) in zip(("weight", "weight2"), lw.terms()):
        if step.kind in ("conv2d", "conv_transpose"):
            wq = q.transpose(0, 2, 3, 1)  # [O, I, kh, kw] -> [O, kh, kw, I]
        elif step.kind == "depthwise_conv2d":
            wq = q[:, 0]  # [C, 1, kh, kw] -> [C, kh, kw]
        else:
            wq = q
            if step.flatten_from is not None:  # columns from (C, H, W) order to the stored (H, W, C) order
                c, h, w = step.flatten_from
                wq = q.reshape(q.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(q.shape[0], -1)
        arrays[key] = np.ascontiguousarray(wq).astype(np.int8)
    sx, a1 = in_scales[0], lw.scales
    a1_safe = np.where(a1 == 0, 1.0, a1)
    bias_real = np.where(a1 == 0, 0.0, lw.bias / (sx * a1_safe))
    if np.abs(bias_real).max(initial=0) >= 2**31 - 1:
        raise Q4Error(f"node '{step.node.name}': bias does not fit int32 at the chosen scales")
    k = int(np.prod(arrays["weight"].shape[1:]))
    bias = np.rint(bias_real).astype(np.int64)
    if k * 255 * 8 + int(np.abs(bias).max(initial=0)) >= 2**31:
        raise Q4Error(f"node '{step.node.name}': int32 accumulator could overflow (K={k})")
    arrays["bias"] = bias.astype(np.int32)
    reals = np.array([s_in * ws / sy for s_in in in_scales for _, ws in lw.terms()])
    arrays["multiplier"], arrays["shift"] = numerics.requant_multipliers(
        step.node.name, reals, lw.stats.setdefault("numerics", [])
    )
    return arrays


def _chw_flatten(
    step: Step, inputs: list[str], out: QTensor, chw: tuple[int, ...], tensors: dict, ops: list[QOp]
) -> None:
    """A flatten of a (C, H, W) map read by something other than a dense layer (or the model
    output): the reshape's channels-last bytes are (H, W, C) order, so a ``gather`` on the flat
    vector puts them in the float model's C-order (element c·H·W + h·W + w reads h·W·C + w·C + c)."""
    c, h, w = chw
    hwc = QTensor(f"{out.name}__hwc", out.shape, out.bits, out.scale, out.zero_point)
    tensors[hwc.name] = hwc
    ops.append(QOp(step.node.name, "reshape", inputs, hwc.name, {}, {}))
    index = (np.arange(h * w, dtype=np.int64)[None, :] * c + np.arange(c, dtype=np.int64)[:, None]).reshape(
        -1
    )
    ops.append(
        QOp(
            f"{step.node.name}__chw",
            "gather",
            [hwc.name],
            out.name,
            {"axis": 0},
            {"index": index.astype(np.int32)},
        )
    )


def _split_ops(f: QTensor, bits: int, tensors: dict[str, QTensor], ops: list[QOp]) -> list[str]:
    """Append the two residual_split ops that recode the fine-grid tensor ``f`` into X1 and X2;
    returns their tensor names."""
    zc = coarse_zero_point(f.zero_point, bits)
    names = []
    for part, (suffix, scale, zp) in enumerate(
        (("coarse", f.scale * (1 << bits), zc), ("residual", f.scale, 0))
    ):
        name = f"{f.name}__{suffix}"
        tensors[name] = QTensor(name, tuple(f.shape), bits, float(scale), int(zp))
        ops.append(
            QOp(name, "residual_split", [f.name], name, {"part": part, "coarse_zero_point": int(zc)}, {})
        )
        names.append(name)
    return names


def lower(
    graph: FloatGraph,
    steps: list[Step],
    qparams: dict[str, QuantParams],
    weights: dict[str, LayerWeights],
    recipe: Recipe,
) -> QModel:
    """The integer QModel of the planned ``steps`` with their chosen quantization ``qparams`` and
    quantized ``weights``: tensors channels-last, one QOp per step (``LOWERINGS`` gives its attrs
    and arrays), residual_split ops before the layers that read a residual-quantized activation."""
    tensors: dict[str, QTensor] = {}

    def tensor(name: str) -> QTensor:
        if name not in tensors:
            p = qparams[name]
            tensors[name] = QTensor(
                name, _stored_shape(graph.shapes[name]), p.bits, float(p.scale), int(p.zero_point)
            )
        return tensors[name]

    tensor(graph.input_name)
    res_name = residual_name(graph.input_name)
    if res_name in qparams:
        p = qparams[res_name]
        tensors[res_name] = QTensor(
            res_name, _stored_shape(graph.shapes[graph.input_name]), p.bits, float(p.scale), int(p.zero_point)
        )
    ops: list[QOp] = []
    fine = set(recipe.residual_activations)  # residual-quantized tensors, held on the fine grid
    split: dict[str, list[str]] = {}  # fine tensor -> its (X1, X2) tensors, once split
    for step in steps:
        inputs = list(step.inputs)
        if res_name in tensors and graph.input_name in inputs:
            inputs.append(res_name)
        if step.same_quant and inputs[0] in fine:
            fine.add(step.output)
        if OPS[step.kind].weighted and inputs[0] in fine:
            if inputs[0] not in split:
                split[inputs[0]] = _split_ops(tensor(inputs[0]), recipe.activation_bits, tensors, ops)
            inputs = split[inputs[0]]
        ins = [tensor(i) for i in inputs]
        out = tensor(step.output)
        attrs, arrays = LOWERINGS[step.kind](step, ins, out, weights)
        if "act_min" in OPS[step.kind].attrs:
            attrs["act_min"], attrs["act_max"] = _act_limits(step.act, qparams[step.output])
        if step.chw_order:  # the flatten's (H, W, C) bytes, then a gather into the C-order
            _chw_flatten(step, inputs, out, graph.shapes[step.inputs[0]], tensors, ops)
            continue
        ops.append(QOp(step.node.name, step.kind, inputs, step.output, attrs, arrays))

    meta = {
        "recipe": recipe.to_dict(),
        "source_hash": graph.source_hash,
        "input_layout": graph.input_layout,
        "input_shape_float": list(graph.input_shape),
        "output_softmax": bool(graph.output_softmax),
        "weight_bits": recipe.weight_bits,
        "activation_bits": recipe.activation_bits,
    }
    if res_name in tensors:
        meta["input_residual"] = res_name
    if recipe.residual_activations:
        meta["residual_activations"] = list(recipe.residual_activations)
    return QModel(graph.name, graph.input_name, graph.output_name, tensors, ops, meta)


# ---------------------------------------------------------------- the integer attrs and arrays per kind
# Each returns (attrs, arrays) of the QOp a step becomes; act_min / act_max are added by ``lower``
# for the kinds that have them.


def _ints(values) -> list[int]:
    return [int(v) for v in values]


def _window(a: dict) -> dict:
    return {
        "kernel": _ints(a["kernel"]),
        "stride": _ints(a["stride"]),
        "pads": _ints(a.get("pads", (0, 0, 0, 0))),
    }


def _lower_conv(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    a = step.node.attrs
    arrays = _lower_weights(step, weights[step.node.name], [t.scale for t in ins], out.scale)
    attrs = {"stride": _ints(a.get("stride", (1, 1))), "pads": _ints(a.get("pads", (0, 0, 0, 0)))}
    # optional attrs only when not their default (docs/q4-format.md)
    if tuple(a.get("dilation", (1, 1))) != (1, 1):
        attrs["dilation"] = _ints(a["dilation"])
    if step.kind == "conv2d" and int(a.get("groups", 1)) != 1:
        attrs["groups"] = int(a["groups"])
    return attrs, arrays


def _lower_fully_connected(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    return {}, _lower_weights(step, weights[step.node.name], [t.scale for t in ins], out.scale)


def _lower_add(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    ma, mb, sh = fixedpoint.add_multipliers(ins[0].scale / out.scale, ins[1].scale / out.scale)
    return {"shift": sh}, {"multiplier": np.array([ma, mb], np.int32)}


def _average(ins: list[QTensor], out: QTensor, count: int) -> dict:
    m, s = fixedpoint.quantize_multiplier(ins[0].scale / (out.scale * count))
    return {"multiplier": np.array([m], np.int32), "shift": np.array([s], np.int32)}


def _lower_avgpool(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    a = step.node.attrs
    if "count_pads" not in a:
        return _window(a), _average(ins, out, int(np.prod(a["kernel"])))
    # a divisor per window: entry d - 1 of the tables for a window of d counted taps
    m, s = fixedpoint.quantize_multipliers(
        ins[0].scale / (out.scale * np.arange(1, int(np.prod(a["kernel"])) + 1, dtype=np.float64))
    )
    return {**_window(a), "count_pads": _ints(a["count_pads"])}, {"multiplier": m, "shift": s}


def _lower_global_avgpool(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    return {}, _average(ins, out, int(np.prod(ins[0].shape[:2])))


def _lower_maxpool(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    return _window(step.node.attrs), {}


def _lower_pad(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    return {"pads": _ints(step.node.attrs["pads"])}, {}


def _lower_plain(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    return {}, {}


def _lower_lut(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    """The table of a unary function: f on every dequantized input code in float64, rounded half
    away from zero at the output scale and clamped (docs/integer-spec.md, lut)."""
    t = ins[0]
    codes = torch.arange(t.qmin, t.qmax + 1, dtype=torch.float64)
    v = unary([(codes - t.zero_point) * t.scale], step.node.attrs, {}).numpy() / out.scale
    return {}, {"table": _table(v, out)}


def _table(v: np.ndarray, out: QTensor) -> np.ndarray:
    """Real values in output-scale units -> int8 table entries: rounded half away from zero, plus the
    zero point, clamped to the output's codes."""
    v = np.clip(np.nan_to_num(v), -1024.0, 1024.0)  # beyond every output range
    r = np.trunc(v) + (v - np.trunc(v) >= 0.5) - (v - np.trunc(v) <= -0.5)
    return np.clip(r + out.zero_point, out.qmin, out.qmax).astype(np.int8)


def _lower_concat(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    """One (multiplier, shift) per input: requantize(x - z_i, m_i, s_i) ~ (x - z_i) S_i / S_y."""
    m, s = fixedpoint.quantize_multipliers(np.array([t.scale / out.scale for t in ins]))
    return {}, {"multiplier": m, "shift": s}


def _lower_mul(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    """requantize((a - za)(b - zb), m, s) ~ (a - za)(b - zb) Sa Sb / Sy."""
    m, s = fixedpoint.quantize_multiplier(ins[0].scale * ins[1].scale / out.scale)
    return {}, {"multiplier": np.array([m], np.int32), "shift": np.array([s], np.int32)}


def _lower_addsub(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    """As add, with the subtrahend's multiplier negated for a subtraction (a's for ``reversed``: b - a)."""
    ma, mb, sh = fixedpoint.add_multipliers(ins[0].scale / out.scale, ins[1].scale / out.scale)
    if step.node.op == "sub":
        ma, mb = (-ma, mb) if step.node.attrs.get("reversed") else (ma, -mb)
    return {"shift": sh}, {"multiplier": np.array([ma, mb], np.int32)}


def _lower_lut_channel(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    """One table per channel of a PReLU: x, or slope[c] x below zero, on every dequantized input
    code in float64, rounded as the lut tables are (docs/integer-spec.md, lut_channel)."""
    t = ins[0]
    x = (np.arange(t.qmin, t.qmax + 1, dtype=np.float64) - t.zero_point) * t.scale
    slope = np.asarray(step.node.params["slope"], np.float64).reshape(-1, 1)
    v = np.where(x[None, :] >= 0, x[None, :], slope * x[None, :]) / out.scale
    return {}, {"table": _table(v, out)}


def _lower_conv_transpose(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    attrs, arrays = _lower_conv(step, ins, out, weights)
    return {**attrs, "output_padding": _ints(step.node.attrs.get("output_padding", (0, 0)))}, arrays


def _lower_resize(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    a = step.node.attrs
    return {"mode": RESIZE_MODES.index(a["mode"]), "scale": _ints(a["scale"])}, {}


def _stored_axis(logical: int, rank: int) -> int:
    """Axis of a (C, H, W) / (F,) tensor in its channels-last stored shape."""
    return (2, 0, 1)[logical] if rank == 3 else logical


def _lower_gather(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    a = step.node.attrs
    return {"axis": _stored_axis(int(a["axis"]), len(ins[0].shape))}, {
        "index": np.asarray(a["index"], np.int32)
    }


def _lower_reduce_mean(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    """The stored axes reduced: the held ones and any size-1 axes between them (adjacent by plan)."""
    stored = [_stored_axis(int(i), len(ins[0].shape)) for i in step.node.attrs["axes"]]
    first, last = min(stored), max(stored)
    count = int(np.prod(ins[0].shape[first : last + 1]))
    return {"axes": [first, last]}, _average(ins, out, count)


def _lower_softmax(step: Step, ins: list[QTensor], out: QTensor, weights: dict) -> tuple[dict, dict]:
    """table[d] = round(2^15 exp(-d S_x)) (half away from zero, float64) for every code difference
    d; steps = round(1 / S_y), the output codes per unit of probability (docs/integer-spec.md)."""
    d = np.arange(1 << ins[0].bits, dtype=np.float64)
    table = np.floor(np.exp(-d * ins[0].scale) * (1 << 15) + 0.5)
    steps = int(np.clip(np.floor(1.0 / out.scale + 0.5), 1, (1 << 16) - 1))
    axis = _stored_axis(int(step.node.attrs["axis"]), len(ins[0].shape))
    return {"axis": axis, "steps": steps}, {"table": table.astype(np.int32)}


#: kind -> f(step, input tensors, output tensor, quantized weights) -> (attrs, arrays)
LOWERINGS = {
    "conv2d": _lower_conv,
    "depthwise_conv2d": _lower_conv,
    "fully_connected": _lower_fully_connected,
    "add": _lower_add,
    "avgpool": _lower_avgpool,
    "global_avgpool": _lower_global_avgpool,
    "maxpool": _lower_maxpool,
    "clamp": _lower_plain,
    "pad": _lower_pad,
    "reshape": _lower_plain,
    "lut": _lower_lut,
    "concat": _lower_concat,
    "mul": _lower_mul,
    "addsub": _lower_addsub,
    "lut_channel": _lower_lut_channel,
    "conv_transpose": _lower_conv_transpose,
    "resize": _lower_resize,
    "gather": _lower_gather,
    "reduce_mean": _lower_reduce_mean,
    "softmax": _lower_softmax,
}
