"""``q4sdk report``: per-layer diagnostics of a quantized model, in Markdown, HTML and JSON.

For each layer (conv, dense, add, pool) the report gives its cost (MACs, flash bytes), the weight
error the quantizer recorded (``meta["layer_stats"]``), and the error of its output tensor as the
integer program computes it: the oracle's integers, dequantized, against the float model's same
tensor on the user's data. End to end it gives float, fake-quant and integer top-1 accuracy, the
float/integer top-1 agreement and the compression ratio CR(W, A). ``docs/report.md`` defines every
number.

Statistics are accumulated batch by batch, so the data set can be large: no tensor of the whole
set is held in memory.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from q4sdk.errors import Q4Error
from q4sdk.ir import oracle
from q4sdk.ir.float_exec import run_float, run_node
from q4sdk.ir.float_graph import FloatGraph, FloatNode
from q4sdk.ir.ops import LAYER_KINDS, WEIGHTED_KINDS
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.progress import Progress

BATCH = 256
PLOTS = ("sqnr.png", "scale_over_max.png", "weight_hist.png")


@dataclass
class LayerRow:
    """One layer of the report. ``None`` means: not applicable, or not measurable (no float model)."""

    name: str
    kind: str
    input_shapes: list[list[int]]  # stored (channels-last) shapes, per sample
    output_shape: list[int]
    macs: int
    weight_bytes: int  # packed INT4 (both tensors if dual) + bias/multiplier/shift tables
    dual: bool
    weight_mse: float | None
    weight_sqnr_db: float | None
    scale_over_max: list[float] | None  # per kernel: chosen scale * qmax / max|w|
    calib_output_sqnr_db: float | None  # the quantizer's own estimate on the calibration set (simulated)
    activation_sqnr_db: float | None  # oracle output (dequantized) vs the float model, on the report data
    output_bits: int
    output_scale: float
    output_zero_point: int
    clip_fraction: float | None  # share of float output values that saturate at qmin / qmax


@dataclass
class ReportData:
    model: str
    recipe: dict
    samples: int
    layers: list[LayerRow]
    accuracy: dict  # float, fake_quant, integer, top1_agreement (None when not measurable)
    compression: dict  # weights, activations: CR = 32-bit float bits / quantized bits
    totals: dict  # macs, weight_bytes
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return _finite_or_none(asdict(self))


# --------------------------------------------------------------------------- measurements


def _dequant(q: np.ndarray, t: QTensor) -> np.ndarray:
    return np.float32(t.scale) * (q.astype(np.float32) - np.float32(t.zero_point))


def _fake_quant(x: torch.Tensor, t: QTensor) -> torch.Tensor:
    """``scale * (clamp(round(x / scale) + zp) - zp)``, rounding half up as requantization does."""
    q = torch.clamp(torch.floor(x / t.scale + 0.5) + t.zero_point, t.qmin, t.qmax)
    return (q - t.zero_point) * t.scale


def _channels_last(a: np.ndarray) -> np.ndarray:
    """Float tensor [N, C, H, W] -> [N, H, W, C] as the oracle stores it; vectors unchanged."""
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def _term_reals(op: QOp) -> np.ndarray:
    """Real requantization multipliers [T, O] of a weighted op: m * 2^-shift."""
    o = len(op.arrays["bias"])
    m = op.arrays["multiplier"].astype(np.float64).reshape(-1, o)
    return m * np.exp2(-op.arrays["shift"].astype(np.float64))


def weight_scales(model: QModel, op: QOp) -> list[np.ndarray]:
    """Per-kernel weight scales [O] of each weight tensor of ``op``, recovered from its multipliers
    (multiplier = s_in * s_w / s_out, exact to about 2^-30 relative)."""
    reals = _term_reals(op)
    s_in = model.tensors[op.inputs[0]].scale
    s_out = model.tensors[op.output].scale
    n_w = 2 if "weight2" in op.arrays else 1
    return [reals[j] * s_out / s_in for j in range(n_w)]


def _float_layout_weight(model: QModel, op: QOp, key: str) -> np.ndarray:
    """Integer weight ``key`` of ``op`` in the float graph's layout ([O, I, kh, kw] / [O, I] in C,H,W order)."""
    q = op.arrays[key].astype(np.float64)
    if op.kind == "conv2d":
        return q.transpose(0, 3, 1, 2)
    if op.kind == "depthwise_conv2d":
        return q[:, None]
    src = next((p for p in model.ops if p.output == op.inputs[0] and p.kind == "reshape"), None)
    if src is not None and len(model.tensors[src.inputs[0]].shape) == 3:  # flatten of (H, W, C)
        h, w, c = model.tensors[src.inputs[0]].shape
        q = q.reshape(len(q), h, w, c).transpose(0, 3, 1, 2).reshape(len(q), -1)
    return q


def dequantized_weights(model: QModel, op: QOp) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of a weighted op as real numbers, in the float graph's layout."""
    scales = weight_scales(model, op)
    terms = [_float_layout_weight(model, op, key) for key in ("weight", "weight2")[: len(scales)]]
    w = sum(q * s.reshape((-1,) + (1,) * (q.ndim - 1)) for q, s in zip(terms, scales))
    bias = op.arrays["bias"].astype(np.float64) * model.tensors[op.inputs[0]].scale * scales[0]
    return w.astype(np.float32), bias.astype(np.float32)


def fake_quant_nodes(model: QModel, graph: FloatGraph) -> list[FloatNode]:
    """The float graph's nodes with each conv / dense weight and bias replaced by the integer model's,
    dequantized."""
    by_name = {op.name: op for op in model.ops if op.kind in WEIGHTED_KINDS}
    out = []
    for node in graph.nodes:
        if node.name in by_name:
            w, b = dequantized_weights(model, by_name[node.name])
            node = replace(node, params={"weight": w, "bias": b})
        out.append(node)
    return out


def _dequantized_input(model: QModel, x: np.ndarray) -> np.ndarray:
    """The integer program's input, dequantized, in the float graph's layout (``x`` in that layout);
    a residual-quantized input is the sum of its two tensors."""
    nhwc = model.meta.get("input_layout") == "NHWC" and x.ndim == 4
    xq = oracle.quantize_input(model, x.transpose(0, 2, 3, 1) if nhwc else x)
    res = model.meta.get("input_residual")
    v = (
        _dequant(xq[:, 0], model.input_tensor) + _dequant(xq[:, 1], model.tensors[res])
        if res
        else _dequant(xq, model.input_tensor)
    )
    return np.ascontiguousarray(v.transpose(0, 3, 1, 2) if v.ndim == 4 else v)


def run_fake_quant(model: QModel, graph: FloatGraph, nodes: list[FloatNode], x: np.ndarray) -> np.ndarray:
    """Fake-quant simulation: ``nodes`` (from ``fake_quant_nodes``) in float arithmetic, with every tensor
    the integer model stores replaced by its fake-quantized value; the input is quantized exactly as the
    integer program quantizes it. It differs from the integer program only inside a layer: bias rounding,
    fixed-point multipliers, float accumulation."""
    with torch.no_grad():
        vals = {graph.input_name: torch.from_numpy(_dequantized_input(model, x))}
        for node in nodes:
            v = run_node(node, [vals[t] for t in node.inputs])
            vals[node.output] = (
                _fake_quant(v, model.tensors[node.output]) if node.output in model.tensors else v
            )
    return vals[graph.output_name].numpy()


class _LayerAccumulator:
    """Signal power, noise power and saturated count of one tensor, summed over batches."""

    def __init__(self) -> None:
        self.signal = self.noise = 0.0
        self.clipped = self.count = 0

    def add(self, ref: np.ndarray, q: np.ndarray, t: QTensor) -> None:
        ref = ref.astype(np.float64)
        self.signal += float((ref**2).sum())
        self.noise += float(((ref - _dequant(q, t)) ** 2).sum())
        lo = t.scale * (t.qmin - t.zero_point - 0.5)
        hi = t.scale * (t.qmax - t.zero_point + 0.5)
        self.clipped += int(((ref < lo) | (ref > hi)).sum())
        self.count += ref.size

    def sqnr_db(self) -> float:
        if self.noise == 0:
            return math.inf
        return 10.0 * math.log10(max(self.signal, 1e-30) / self.noise)


def _check_float_graph(model: QModel, graph: FloatGraph, ops: list[QOp]) -> None:
    shape = tuple(model.meta.get("input_shape_float") or graph.input_shape)
    if tuple(graph.input_shape) != shape:
        raise Q4Error(
            f"float model '{graph.name}': input shape {tuple(graph.input_shape)} differs from the "
            f"quantized model's {shape} (is it the model this .q4 was quantized from?)"
        )
    for op in ops:
        t = model.tensors[op.output]
        if op.output not in graph.shapes or int(np.prod(graph.shapes[op.output])) != t.size:
            raise Q4Error(
                f"float model '{graph.name}': no tensor '{op.output}' of size {t.size} for op "
                f"'{op.name}' ({op.kind}) (is it the model this .q4 was quantized from?)"
            )
    for op in model.ops:
        if op.kind in WEIGHTED_KINDS and op.name not in {n.name for n in graph.nodes}:
            raise Q4Error(f"float model '{graph.name}': no node '{op.name}' for op '{op.name}' ({op.kind})")


def op_costs(model: QModel, op: QOp) -> tuple[int, int]:
    """(MACs per inference, flash bytes) of ``op``, counted as ``q4sdk generate`` counts them: every
    (input term, weight tensor) pair of a multi-term layer is a full pass; weights packed two per byte
    per kernel row, plus int32 bias / multiplier / shift tables. Adds and pools count 0 MACs."""
    if op.kind not in WEIGHTED_KINDS:
        return 0, 0
    weights = [op.arrays[k] for k in ("weight", "weight2") if k in op.arrays]
    o, k = len(weights[0]), int(np.prod(weights[0].shape[1:]))
    positions = int(np.prod(model.tensors[op.output].shape[:-1])) if op.kind != "fully_connected" else 1
    if op.kind == "conv_transpose":  # each input pixel scatters into kh * kw * O outputs
        positions = int(np.prod(model.tensors[op.inputs[0]].shape[:-1]))
    macs = positions * o * k * len(weights) * len(op.inputs)
    flash = len(weights) * o * ((k + 1) // 2) + 4 * sum(
        op.arrays[a].size for a in ("bias", "multiplier", "shift")
    )
    return macs, flash


def compression_ratio(model: QModel) -> dict:
    """CR(W, A) after Choukroun et al.: 32-bit float bits over quantized bits, for weights (conv/dense
    weights; a dual layer's weights count twice) and activations (the input and every op output; a
    residual-quantized input counts twice, a residual-quantized activation counts once at 8 bits, the
    X1 and X2 its residual_split ops recode it into adding nothing)."""
    w_elems = w_bits = 0
    for op in model.ops:
        if op.kind in WEIGHTED_KINDS:
            n = op.arrays["weight"].size
            w_elems += n
            w_bits += n * model.meta.get("weight_bits", 4) * (2 if "weight2" in op.arrays else 1)
    res = model.meta.get("input_residual")
    a_elems = a_bits = 0
    for name in [model.input] + [op.output for op in model.ops if op.kind != "residual_split"]:
        t = model.tensors[name]
        a_elems += t.size
        a_bits += t.size * t.bits + (t.size * model.tensors[res].bits if res and name == model.input else 0)
    return {
        "weights": 32 * w_elems / w_bits if w_bits else None,
        "activations": 32 * a_elems / a_bits if a_bits else None,
    }


def collect_report(
    model: QModel,
    x: np.ndarray,
    y: np.ndarray | None,
    float_graph: FloatGraph | None,
    progress: Progress | None = None,
) -> ReportData:
    """Measure everything the report shows. ``x``: float32 [N, *meta["input_shape_float"]], the layout
    ``load_samples`` returns and the float graph takes (an NHWC model's data is transposed here)."""
    progress = progress or Progress(enabled=False)
    x = np.asarray(x, np.float32)
    shape = tuple(model.meta.get("input_shape_float") or ())
    if shape and tuple(x.shape[1:]) != shape:
        raise Q4Error(
            f"report data: sample shape {tuple(x.shape[1:])} does not match the model input "
            f"'{model.input}' {shape}"
        )
    if len(x) == 0:
        raise Q4Error("report data: no samples")
    n_out = model.output_tensor.size
    if y is not None:
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if len(y) != len(x) or y.min() < 0 or y.max() >= n_out:
            raise Q4Error(
                f"report labels: need {len(x)} labels in [0, {n_out}), got {len(y)} in [{y.min()}, {y.max()}]"
            )
    ops = [op for op in model.ops if op.kind in LAYER_KINDS]
    if float_graph is not None:
        _check_float_graph(model, float_graph, ops)
    fq_nodes = None if float_graph is None else fake_quant_nodes(model, float_graph)
    user_x = x.transpose(0, 2, 3, 1) if model.meta.get("input_layout") == "NHWC" and x.ndim == 4 else x

    acc = {op.output: _LayerAccumulator() for op in ops}
    preds = {"float": [], "fake_quant": [], "integer": []}
    n_batches = (len(x) + BATCH - 1) // BATCH
    for b, start in enumerate(range(0, len(x), BATCH)):
        progress.update(b, n_batches, f"integer oracle and float model, samples {start}..")
        xb = x[start : start + BATCH]
        out_q, q_vals = oracle.run_oracle(
            model, oracle.quantize_input(model, user_x[start : start + BATCH]), capture=True
        )
        preds["integer"].append(out_q.reshape(len(xb), -1).argmax(axis=1))
        if float_graph is None:
            continue
        out_f, f_vals = run_float(float_graph, xb, capture=True)
        preds["float"].append(out_f.reshape(len(xb), -1).argmax(axis=1))
        preds["fake_quant"].append(
            run_fake_quant(model, float_graph, fq_nodes, xb).reshape(len(xb), -1).argmax(axis=1)
        )
        for op in ops:
            t = model.tensors[op.output]
            ref = _channels_last(f_vals[op.output]).reshape((len(xb),) + tuple(t.shape))
            acc[op.output].add(ref, q_vals[op.output], t)
    progress.done(f"measured {len(x)} samples")

    p = {k: np.concatenate(v) if v else None for k, v in preds.items()}
    accuracy = {
        "float": None if y is None or p["float"] is None else float((p["float"] == y).mean()),
        "fake_quant": None if y is None or p["fake_quant"] is None else float((p["fake_quant"] == y).mean()),
        "integer": None if y is None else float((p["integer"] == y).mean()),
        "top1_agreement": None if p["float"] is None else float((p["float"] == p["integer"]).mean()),
    }
    costs = {op.name: op_costs(model, op) for op in model.ops}
    stats = model.meta.get("layer_stats", {})
    rows = []
    for op in ops:
        s, t = stats.get(op.name, {}), model.tensors[op.output]
        a = acc[op.output] if float_graph is not None else None
        rows.append(
            LayerRow(
                name=op.name,
                kind=op.kind,
                input_shapes=[list(model.tensors[i].shape) for i in op.inputs],
                output_shape=list(t.shape),
                macs=costs[op.name][0],
                weight_bytes=costs[op.name][1],
                dual="weight2" in op.arrays,
                weight_mse=s.get("weight_mse"),
                weight_sqnr_db=s.get("weight_sqnr_db"),
                scale_over_max=s.get("scale_over_max"),
                calib_output_sqnr_db=s.get("output_sqnr_db"),
                activation_sqnr_db=None if a is None else a.sqnr_db(),
                output_bits=t.bits,
                output_scale=t.scale,
                output_zero_point=t.zero_point,
                clip_fraction=None if a is None else a.clipped / max(a.count, 1),
            )
        )
    notes = []
    if float_graph is None:
        notes.append(
            "no float model: activation SQNR, clipping, float and fake-quant accuracy and agreement "
            "are not available (pass --float-model)"
        )
    if y is None:
        notes.append("the data has no labels: accuracies are not available")
    if not stats:
        notes.append("the model records no quantizer layer statistics: weight MSE/SQNR are not available")
    notes += numerics_notes(model)
    return ReportData(
        model=model.name,
        recipe=dict(model.meta.get("recipe", {})),
        samples=len(x),
        layers=rows,
        accuracy=accuracy,
        compression=compression_ratio(model),
        totals={"macs": sum(c[0] for c in costs.values()), "weight_bytes": sum(c[1] for c in costs.values())},
        notes=notes,
    )


def numerics_notes(model: QModel) -> list[str]:
    """One note per layer the quantizer gave a special integer form (``meta["numerics"]``, see
    q4sdk/ptq/numerics.py): dead / zero kernels carried by their bias, floored output scales, ..."""
    by_layer: dict[str, dict[str, list]] = {}
    for rec in model.meta.get("numerics", []) or []:
        if isinstance(rec, dict):
            cases = by_layer.setdefault(str(rec.get("layer", rec.get("tensor", "?"))), {})
            cases.setdefault(str(rec.get("case", "?")), []).append(rec.get("channel"))
    notes = []
    for layer, cases in by_layer.items():
        parts = []
        for case, chans in cases.items():
            listed = [str(c) for c in chans if c is not None]
            parts.append(
                case.replace("_", " ")
                + (
                    f" (channels {', '.join(listed[:12])}{', ...' if len(listed) > 12 else ''})"
                    if listed
                    else ""
                )
            )
        notes.append(f"numerics: layer '{layer}': {'; '.join(parts)}")
    return notes


# --------------------------------------------------------------------------- rendering


def _finite_or_none(v):
    """JSON has no infinities or NaN: they become null."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite_or_none(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite_or_none(x) for x in v]
    return v


def _fmt(v, digits: int = 2, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return f"{100 * v:.{digits}f} %" if pct else f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _plots(data: ReportData, model: QModel, float_graph: FloatGraph | None) -> dict[str, bytes]:
    """The PNG figures, in memory: {file name: bytes}. The weight histogram needs the float model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    names = [r.name for r in data.layers]
    idx = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names)), 4))
    for off, label, vals in (
        (-0.2, "weights", [r.weight_sqnr_db for r in data.layers]),
        (0.2, "output activations", [r.activation_sqnr_db for r in data.layers]),
    ):
        ax.bar(idx + off, [v if v is not None and math.isfinite(v) else 0.0 for v in vals], 0.4, label=label)
    ax.set_xticks(idx, names, rotation=60, ha="right")
    ax.set_ylabel("SQNR (dB)")
    ax.set_title("Per-layer SQNR (higher is better; missing bars: n/a)")
    ax.legend()
    out["sqnr.png"] = _png(fig)
    plt.close(fig)

    weighted = [r for r in data.layers if r.scale_over_max]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(weighted)), 4))
    if weighted:
        ax.boxplot([r.scale_over_max for r in weighted], showfliers=False)
        rng = np.random.default_rng(0)
        for i, r in enumerate(weighted, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(r.scale_over_max)), r.scale_over_max, s=6, alpha=0.5)
        ax.set_xticks(np.arange(1, len(weighted) + 1), [r.name for r in weighted], rotation=60, ha="right")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("chosen clip / max|w|  (scale * qmax / max|w|)")
    ax.set_title("Chosen weight range vs the kernel's max, per kernel")
    out["scale_over_max.png"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    layer = min(
        (r for r in data.layers if r.weight_sqnr_db is not None and r.kind in WEIGHTED_KINDS),
        key=lambda r: r.weight_sqnr_db,
        default=None,
    )
    node = (
        None
        if float_graph is None or layer is None
        else next((n for n in float_graph.nodes if n.name == layer.name), None)
    )
    if node is None:
        ax.text(0.5, 0.5, "weight histogram needs the float model", ha="center", va="center")
        ax.set_axis_off()
    else:
        op = next(o for o in model.ops if o.name == layer.name)
        w = np.asarray(node.params["weight"], np.float64)
        s1 = weight_scales(model, op)[0]
        steps = (w.reshape(len(w), -1) / np.where(s1 == 0, 1.0, s1)[:, None]).ravel()
        ax.hist(steps, bins=80)
        for edge in (-8.5, 7.5):  # the INT4 codes -8..7 cover (qmin - 1/2, qmax + 1/2) steps
            ax.axvline(edge, color="red", ls="--")
        ax.set_xlabel("float weight / its kernel's scale (INT4 steps); red: clip range")
        ax.set_ylabel("count")
        ax.set_title(
            f"'{layer.name}' weights (lowest weight SQNR{', dual: first tensor' if layer.dual else ''})"
        )
    out["weight_hist.png"] = _png(fig)
    plt.close(fig)
    return out


_COLUMNS = (
    ("layer", lambda r: r.name),
    ("kind", lambda r: r.kind),
    ("in", lambda r: " + ".join("x".join(map(str, s)) for s in r.input_shapes)),
    ("out", lambda r: "x".join(map(str, r.output_shape))),
    ("MACs", lambda r: _fmt(r.macs)),
    ("flash B", lambda r: _fmt(r.weight_bytes)),
    ("dual", lambda r: _fmt(r.dual) if r.kind in WEIGHTED_KINDS else ""),
    ("W MSE", lambda r: "n/a" if r.weight_mse is None else f"{r.weight_mse:.3g}"),
    ("W SQNR dB", lambda r: _fmt(r.weight_sqnr_db, 1)),
    ("A SQNR dB", lambda r: _fmt(r.activation_sqnr_db, 1)),
    ("calib A SQNR dB", lambda r: _fmt(r.calib_output_sqnr_db, 1)),
    ("bits", lambda r: str(r.output_bits)),
    ("scale", lambda r: f"{r.output_scale:.4g}"),
    ("zp", lambda r: str(r.output_zero_point)),
    ("clipped", lambda r: _fmt(r.clip_fraction, 3, pct=True)),
)


def _summary_rows(data: ReportData) -> list[tuple[str, str]]:
    a, c = data.accuracy, data.compression
    return [
        ("samples", _fmt(data.samples)),
        ("FP32 top-1 (float model)", _fmt(a["float"], pct=True)),
        ("fake-quant top-1 (simulated)", _fmt(a["fake_quant"], pct=True)),
        ("integer top-1 (oracle = C)", _fmt(a["integer"], pct=True)),
        ("top-1 agreement float vs integer", _fmt(a["top1_agreement"], pct=True)),
        ("CR(W, A)", f"({_fmt(c['weights'])}, {_fmt(c['activations'])})"),
        ("MACs per inference", _fmt(data.totals["macs"])),
        ("flash bytes (weights + tables)", _fmt(data.totals["weight_bytes"])),
    ]


_PLOT_TITLES = {
    "sqnr.png": "Per-layer SQNR",
    "scale_over_max.png": "Chosen scale vs max, per kernel",
    "weight_hist.png": "Weight histogram with the clip range",
}


def render_markdown(data: ReportData) -> str:
    lines = [f"# Quantization report: {data.model}", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in _summary_rows(data)]
    lines += [
        "",
        "## Layers",
        "",
        "| " + " | ".join(h for h, _ in _COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    lines += ["| " + " | ".join(f(r).replace("|", "\\|") for _, f in _COLUMNS) + " |" for r in data.layers]
    lines += ["", "## Plots", ""] + [f"![{_PLOT_TITLES[p]}]({p})" for p in PLOTS]
    if data.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in data.notes]
    lines += ["", "Definitions: docs/report.md in the q4sdk repository.", ""]
    return "\n".join(lines)


def render_html(data: ReportData, pngs: dict[str, bytes]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>q4sdk report: {e(data.model)}</title><style>",
        "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:90%}",
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} td:first-child{text-align:left}",
        "img{max-width:100%}</style></head><body>",
        f"<h1>Quantization report: {e(data.model)}</h1><table>",
    ]
    parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _summary_rows(data)]
    parts.append(
        "</table><h2>Layers</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h, _ in _COLUMNS) + "</tr>"
    )
    parts += ["<tr>" + "".join(f"<td>{e(f(r))}</td>" for _, f in _COLUMNS) + "</tr>" for r in data.layers]
    parts.append("</table><h2>Plots</h2>")
    for p in PLOTS:
        b64 = base64.b64encode(pngs[p]).decode("ascii")
        parts.append(f"<h3>{e(_PLOT_TITLES[p])}</h3><img alt='{e(p)}' src='data:image/png;base64,{b64}'>")
    if data.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in data.notes) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(
    data: ReportData, model: QModel, float_graph: FloatGraph | None, out_dir: str | Path
) -> list[Path]:
    """Write report.md, report.html (self-contained), report.json and the PNGs into ``out_dir``
    (created if needed; the files of an earlier report there are replaced).

    Everything is rendered in memory first, then the folder is written all or nothing
    (``codegen.output_tree.write_files``): ``out_dir`` is at every instant the old report or the new one.
    """
    from q4sdk.codegen.output_tree import write_files

    out_dir = Path(out_dir)
    pngs = _plots(data, model, float_graph)
    files: dict[str, bytes] = dict(pngs)
    files["report.json"] = (json.dumps(data.to_json(), indent=2, allow_nan=False) + "\n").encode()
    files["report.md"] = render_markdown(data).encode()
    files["report.html"] = render_html(data, pngs).encode()
    write_files(files, out_dir, overwrite=True)
    return [out_dir / name for name in files]


def build_report(
    model: QModel,
    x: np.ndarray,
    y: np.ndarray | None,
    float_graph: FloatGraph | None,
    out_dir: str | Path,
    progress: Progress | None = None,
) -> ReportData:
    """Measure (``collect_report``) and write the report files into ``out_dir``."""
    data = collect_report(model, x, y, float_graph, progress)
    write_report(data, model, float_graph, out_dir)
    return data
