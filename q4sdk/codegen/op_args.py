"""Template arguments of each op: what ``templates/ops/<kind>.c.j2`` needs to spell the op's call.

``op_template_args`` builds the arguments every op has (offsets, sizes, zero points) and then calls
the kind's function in ``TEMPLATE_ARGS``, which adds its own (dims, params, constant tables) and
returns the op's multiply-accumulate count. The model is validated before (``q4sdk.ir.validate``),
so nothing here checks ranges; the numbers come from the QModel unchanged.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from q4sdk.codegen.c_syntax import c_comment, c_table
from q4sdk.ir.packing import pack_int4_rows
from q4sdk.ir.qmodel import QModel, QOp
from q4sdk.ir.validate import concat_axis


def _ints(values) -> list[int]:
    return [int(v) for v in values]


def _hwc(model: QModel, tensor: str) -> list[int]:
    return _ints(model.tensors[tensor].shape)


def _int64(op: QOp, key: str) -> np.ndarray:
    return np.asarray(op.arrays[key]).astype(np.int64)


def _weight_tables(model: QModel, op: QOp, args: dict, rows: np.ndarray) -> int:
    """The INT4 weights (one or two), bias and requantization tables of a weighted op and its
    multi-term arguments; returns the number of terms."""
    weights = [rows]
    if "weight2" in op.arrays:
        weights.append(_int64(op, "weight2").reshape(rows.shape))
    n_terms = len(op.inputs) * len(weights)
    args["act_min"], args["act_max"] = int(op.attrs["act_min"]), int(op.attrs["act_max"])
    args["n_inputs"], args["n_weights"] = len(op.inputs), len(weights)
    args["input_zps"] = [model.tensors[t].zero_point for t in op.inputs]
    args["tables"] = [c_table(f"{args['symbol']}_weight", "uint8_t", pack_int4_rows(weights[0]))]
    if len(weights) == 2:
        args["tables"].append(c_table(f"{args['symbol']}_weight2", "uint8_t", pack_int4_rows(weights[1])))
    args["tables"] += [
        c_table(f"{args['symbol']}_{key}", "int32_t", _int64(op, key))
        for key in ("bias", "multiplier", "shift")
    ]
    return n_terms


def _conv_args(model: QModel, op: QOp, args: dict) -> int:
    h, w, c = _hwc(model, op.inputs[0])
    ho, wo, o = _hwc(model, op.output)
    weight = _int64(op, "weight")
    kh, kw = int(weight.shape[1]), int(weight.shape[2])
    ksize = int(np.prod(weight.shape[1:]))  # kh * kw * I (conv2d) or kh * kw (depthwise)
    args.update(
        stride=_ints(op.attrs["stride"]),
        pads=_ints(op.attrs["pads"]),
        in_dims=[h, w, c],
        # conv2d: I / groups channels per tap; depthwise: C (the kernel reads O / C from the dims)
        filter_dims=[kh, kw, int(weight.shape[3]) if op.kind == "conv2d" else c],
        out_dims=[ho, wo, o],
        dilation=_ints(op.attrs["dilation"]) if "dilation" in op.attrs else None,
    )
    return ho * wo * o * ksize * _weight_tables(model, op, args, weight.reshape(o, ksize))


def _fully_connected_args(model: QModel, op: QOp, args: dict) -> int:
    ksize, o = args["in_size"], args["out_size"]
    # as a 1x1 convolution over one pixel: K and O for select_kernel and the scratch size
    args.update(filter_dims=[1, 1, ksize], out_dims=[1, 1, o])
    return o * ksize * _weight_tables(model, op, args, _int64(op, "weight"))


def _add_args(model: QModel, op: QOp, args: dict) -> int:
    mult = _int64(op, "multiplier")
    args.update(
        a_zp=model.tensors[op.inputs[0]].zero_point,
        b_zp=model.tensors[op.inputs[1]].zero_point,
        a_multiplier=int(mult[0]),
        b_multiplier=int(mult[1]),
        shift=int(op.attrs["shift"]),
        act_min=int(op.attrs["act_min"]),
        act_max=int(op.attrs["act_max"]),
    )
    return 0


def _pool_args(model: QModel, op: QOp, args: dict) -> int:
    kernel, stride, pads = (_ints(op.attrs[k]) for k in ("kernel", "stride", "pads"))
    if "count_pads" in op.attrs:  # avgpool: a (multiplier, shift) per divisor
        args["count_pads"] = _ints(op.attrs["count_pads"])
        args["tables"] = [
            c_table(f"{args['symbol']}_count_{key}", "int32_t", _int64(op, key))
            for key in ("multiplier", "shift")
        ]
    return _window_args(model, op, args, kernel, stride, pads)


def _global_avgpool_args(model: QModel, op: QOp, args: dict) -> int:
    h, w, _ = _hwc(model, op.inputs[0])
    return _window_args(model, op, args, [h, w], [1, 1], [0, 0, 0, 0])


def _window_args(model: QModel, op: QOp, args: dict, kernel, stride, pads) -> int:
    h, w, c = _hwc(model, op.inputs[0])
    if "multiplier" in op.arrays:  # avgpool, global_avgpool
        mult, shift = int(op.arrays["multiplier"][-1]), int(op.arrays["shift"][-1])  # the full window
        lo, hi = int(op.attrs["act_min"]), int(op.attrs["act_max"])
    else:  # maxpool: no requantization, no clamp beyond the storage range
        out_t = model.tensors[op.output]
        mult, shift, lo, hi = 0, 1, out_t.qmin, out_t.qmax
    args.update(
        kernel=kernel,
        stride=stride,
        pads=pads,
        in_dims=[h, w, c],
        out_dims=_hwc(model, op.output),
        multiplier=mult,
        shift=shift,
        act_min=lo,
        act_max=hi,
    )
    args.setdefault("count_pads", None)
    return 0


def _pad_args(model: QModel, op: QOp, args: dict) -> int:
    args.update(
        pads=_ints(op.attrs["pads"]), in_dims=_hwc(model, op.inputs[0]), out_dims=_hwc(model, op.output)
    )
    return 0


def _clamp_args(model: QModel, op: QOp, args: dict) -> int:
    args.update(act_min=int(op.attrs["act_min"]), act_max=int(op.attrs["act_max"]))
    return 0


def _residual_split_args(model: QModel, op: QOp, args: dict) -> int:
    args.update(part=int(op.attrs["part"]), coarse_zp=int(op.attrs["coarse_zero_point"]))
    return 0


def _lut_args(model: QModel, op: QOp, args: dict) -> int:
    args.update(
        input_min=model.tensors[op.inputs[0]].qmin,
        tables=[c_table(f"{args['symbol']}_table", "int8_t", op.arrays["table"])],
    )
    return 0


def _concat_args(model: QModel, op: QOp, args: dict) -> int:
    """Rows are the positions before the concat axis; each input adds its run of the rest per row."""
    axis = concat_axis([model.tensors[t] for t in op.inputs], model.tensors[op.output])
    out_shape = _hwc(model, op.output)
    args.update(
        n_inputs=len(op.inputs),
        rows=int(np.prod(out_shape[:axis])),
        channels=[int(np.prod(_hwc(model, t)[axis:])) for t in op.inputs],
        input_zps=[model.tensors[t].zero_point for t in op.inputs],
        multipliers=_ints(op.arrays["multiplier"]),
        shifts=_ints(op.arrays["shift"]),
        act_min=int(op.attrs["act_min"]),
        act_max=int(op.attrs["act_max"]),
    )
    return 0


def _rows_channels(model: QModel, op: QOp, args: dict) -> None:
    """rows x channels of the output and the row step of the second input (0: one value per channel)."""
    channels = int(model.tensors[op.output].shape[-1])
    b_size = model.tensors[op.inputs[-1]].size
    args.update(
        rows=args["out_size"] // channels,
        channels=channels,
        b_row_step=channels if b_size == args["out_size"] else 0,
    )


def _mul_args(model: QModel, op: QOp, args: dict) -> int:
    _rows_channels(model, op, args)
    args.update(
        a_zp=model.tensors[op.inputs[0]].zero_point,
        b_zp=model.tensors[op.inputs[1]].zero_point,
        multiplier=int(op.arrays["multiplier"][0]),
        shift=int(op.arrays["shift"][0]),
        act_min=int(op.attrs["act_min"]),
        act_max=int(op.attrs["act_max"]),
    )
    return 0


def _addsub_args(model: QModel, op: QOp, args: dict) -> int:
    _add_args(model, op, args)
    _rows_channels(model, op, args)
    return 0


def _lut_channel_args(model: QModel, op: QOp, args: dict) -> int:
    _rows_channels(model, op, args)
    table = op.arrays["table"]
    args.update(
        input_min=model.tensors[op.inputs[0]].qmin,
        table_size=int(table.shape[1]),
        tables=[c_table(f"{args['symbol']}_table", "int8_t", table.reshape(-1))],
    )
    return 0


def _conv_transpose_args(model: QModel, op: QOp, args: dict) -> int:
    """The conv2d arguments; the MACs are per input pixel (each scatters into kh * kw * O outputs)."""
    macs_per_output_pixel = _conv_args(model, op, args)
    ho, wo, _ = args["out_dims"]
    h, w, _ = args["in_dims"]
    return macs_per_output_pixel // (ho * wo) * h * w


def _resize_args(model: QModel, op: QOp, args: dict) -> int:
    args.update(
        mode=int(op.attrs["mode"]),
        scale=_ints(op.attrs["scale"]),
        in_dims=_hwc(model, op.inputs[0]),
        out_dims=_hwc(model, op.output),
    )
    return 0


def _outer_inner(shape, first: int, last: int) -> tuple[int, int, int]:
    """A stored shape as [outer, axes first..last, inner]."""
    return (
        int(np.prod(shape[:first])),
        int(np.prod(shape[first : last + 1])),
        int(np.prod(shape[last + 1 :])),
    )


def _gather_args(model: QModel, op: QOp, args: dict) -> int:
    axis = int(op.attrs["axis"])
    outer, axis_size, inner = _outer_inner(_hwc(model, op.inputs[0]), axis, axis)
    index = _int64(op, "index")
    args.update(
        outer=outer,
        axis_size=axis_size,
        inner=inner,
        n_index=int(index.size),
        tables=[c_table(f"{args['symbol']}_index", "int32_t", index)],
    )
    return 0


def _reduce_mean_args(model: QModel, op: QOp, args: dict) -> int:
    first, last = (int(a) for a in op.attrs["axes"])
    outer, n, inner = _outer_inner(_hwc(model, op.inputs[0]), first, last)
    args.update(
        outer=outer,
        n=n,
        inner=inner,
        multiplier=int(op.arrays["multiplier"][0]),
        shift=int(op.arrays["shift"][0]),
        act_min=int(op.attrs["act_min"]),
        act_max=int(op.attrs["act_max"]),
    )
    return 0


def _softmax_args(model: QModel, op: QOp, args: dict) -> int:
    axis = int(op.attrs["axis"])
    outer, n, inner = _outer_inner(_hwc(model, op.inputs[0]), axis, axis)
    out_t = model.tensors[op.output]
    args.update(
        outer=outer,
        n=n,
        inner=inner,
        steps=int(op.attrs["steps"]),
        qmin=out_t.qmin,
        qmax=out_t.qmax,
        tables=[c_table(f"{args['symbol']}_table", "int32_t", _int64(op, "table"))],
    )
    return 0


def _no_args(model: QModel, op: QOp, args: dict) -> int:
    return 0


#: kind -> f(model, op, args): adds the kind's template arguments to ``args``, returns its MACs
TEMPLATE_ARGS: dict[str, Callable[[QModel, QOp, dict], int]] = {
    "conv2d": _conv_args,
    "depthwise_conv2d": _conv_args,
    "fully_connected": _fully_connected_args,
    "add": _add_args,
    "avgpool": _pool_args,
    "global_avgpool": _global_avgpool_args,
    "maxpool": _pool_args,
    "clamp": _clamp_args,
    "pad": _pad_args,
    "reshape": _no_args,
    "residual_split": _residual_split_args,
    "lut": _lut_args,
    "concat": _concat_args,
    "mul": _mul_args,
    "addsub": _addsub_args,
    "lut_channel": _lut_channel_args,
    "conv_transpose": _conv_transpose_args,
    "resize": _resize_args,
    "gather": _gather_args,
    "reduce_mean": _reduce_mean_args,
    "softmax": _softmax_args,
}


def op_template_args(model: QModel, op: QOp, symbol: str, offsets: dict[str, int]) -> tuple[dict, int]:
    """Template arguments of one op (of a validated model) and its MAC count."""
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.output]
    args = {
        "kind": op.kind,
        "symbol": symbol,
        "comment": c_comment(op.name),
        "tables": [],
        "in_offsets": [offsets[t] for t in op.inputs],
        "out_offset": offsets[op.output],
        "in_size": in_t.size,
        "out_size": out_t.size,
        "input_zp": in_t.zero_point,
        "output_zp": out_t.zero_point,
        "input_bits": in_t.bits,
    }
    macs = TEMPLATE_ARGS[op.kind](model, op, args)
    return args, macs
