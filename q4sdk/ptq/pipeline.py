"""The quantizer: float graph + calibration samples -> integer ``QModel``.

Layers are processed in order over the calibration set, keeping two activations per tensor: the
float model's (``fp``) and the quantized model's as simulated so far (``qp``, fake-quantized).
Each layer's weights are quantized per kernel, its bias optionally corrected so the quantized
layer's mean output matches the float one given the *quantized* inputs, and its output's
quantization range is chosen on the simulated output. Then everything is lowered to integers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from q4sdk.errors import Q4Error
from q4sdk.ir.float_exec import ACTIVATIONS, FLOAT_FUNCTIONS
from q4sdk.ir.float_graph import FloatGraph
from q4sdk.ir.ops import WEIGHTED_KINDS
from q4sdk.ir.qmodel import QModel
from q4sdk.progress import Progress
from q4sdk.ptq import numerics
from q4sdk.ptq.bias_correction import correct_layer_bias
from q4sdk.ptq.calib_check import CalibrationWarning, check_tensor
from q4sdk.ptq.cle import equalize
from q4sdk.ptq.dual import dual_decompose
from q4sdk.ptq.lower import fine_zero_point, lower, residual_name
from q4sdk.ptq.methods import ACTIVATION_RANGE, WEIGHT_ROUNDING, WEIGHT_SCALE
from q4sdk.ptq.plan import Step, build_plan
from q4sdk.ptq.recipe import RECIPE_VERSION, Recipe
from q4sdk.ptq.refine import refine_model
from q4sdk.ptq.sensitivity import choose as choose_by_sensitivity
from q4sdk.ptq.threads import torch_threads
from q4sdk.ptq.weights import int_range, quantize_to_int


@dataclass
class QuantParams:
    scale: float
    zero_point: int
    bits: int

    def fake(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = int_range(self.bits)  # (clamp(round(x / s) + zp) - zp) * s, without temporaries
        return (
            (x / self.scale)
            .round_()
            .add_(self.zero_point)
            .clamp_(lo, hi)
            .sub_(self.zero_point)
            .mul_(self.scale)
        )


@dataclass
class LayerWeights:
    """Quantized weights of one conv / dense step, in the float graph's layout.

    A dual layer has a second INT4 tensor: W ~ scales * q + scales2 * q2 (per kernel).
    """

    q: np.ndarray  # int8, same shape as the float weight
    scales: np.ndarray  # float64 [O]
    bias: np.ndarray  # float64 [O] (possibly corrected)
    q2: np.ndarray | None = None
    scales2: np.ndarray | None = None
    stats: dict = field(default_factory=dict)

    def terms(self) -> list[tuple[np.ndarray, np.ndarray]]:
        t = [(self.q, self.scales)]
        if self.q2 is not None:
            t.append((self.q2, self.scales2))
        return t

    def dequantized(self) -> np.ndarray:
        shape = (-1,) + (1,) * (self.q.ndim - 1)
        return sum(q.astype(np.float64) * s.reshape(shape) for q, s in self.terms())


def _pad4(x: torch.Tensor, pads) -> torch.Tensor:
    t, l, b, r = pads
    return F.pad(x, (l, r, t, b)) if any(pads) else x


def _apply_act(y: torch.Tensor, act) -> torch.Tensor:
    return y if act is None else torch.clamp(y, act[0], act[1])


def _forward(
    step: Step, xs: list[torch.Tensor], weight=None, bias=None, with_act: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float forward of one step; returns (pre-activation, output). ``weight``/``bias`` override;
    ``with_act=False`` skips the activation (the output is then the pre-activation itself).
    The op itself runs through the float interpreter (``float_exec.FLOAT_FUNCTIONS``); a step
    that is an activation alone has the activation as its ``act``."""
    n = step.node
    if n.op in ACTIVATIONS:
        pre = xs[0]
    else:
        params = (
            n.params
            if weight is None and bias is None
            else {
                "weight": n.params["weight"] if weight is None else weight,
                "bias": n.params["bias"] if bias is None else bias,
            }
        )
        pre = FLOAT_FUNCTIONS[n.op](xs, n.attrs, params)
    return pre, (_apply_act(pre, step.act) if with_act else pre)


def _layer_rows(step: Step, xs: list[torch.Tensor], n_rows: int, seed: int) -> list[np.ndarray]:
    """Sampled layer inputs as im2col rows [R, K] in the weight's (I, kh, kw) order, the same rows
    for every tensor in ``xs`` (the float path and the quantized path).

    Rows are drawn from ``n_rows // 16`` random images; only the drawn patches are gathered (no
    full im2col of those images)."""
    rng = np.random.default_rng(seed)
    n_img = min(xs[0].shape[0], max(1, n_rows // 16))
    imgs = torch.as_tensor(np.sort(rng.choice(xs[0].shape[0], n_img, replace=False)))
    if step.kind == "fully_connected":
        n_pos = 1
    else:
        a = step.node.attrs
        kh, kw = step.node.params["weight"].shape[2:]
        sh, sw = tuple(a.get("stride", (1, 1)))
        t, l, b, r = a.get("pads", (0, 0, 0, 0))
        h, w = xs[0].shape[2] + t + b, xs[0].shape[3] + l + r
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        n_pos = oh * ow
    total = n_img * n_pos
    pick = np.sort(rng.choice(total, min(total, n_rows), replace=False))
    img = torch.as_tensor(pick // n_pos)  # index into imgs: only the drawn images are padded
    out = []
    for x in xs:
        if step.kind == "fully_connected":
            rows = x[imgs[img]].flatten(1)
        else:
            pos = torch.as_tensor(pick % n_pos)
            iy = ((pos // ow) * sh)[:, None] + torch.arange(kh)[None, :]  # [R, kh]
            ix = ((pos % ow) * sw)[:, None] + torch.arange(kw)[None, :]  # [R, kw]
            xp = _pad4(x[imgs], (t, l, b, r))
            rows = xp[
                img[:, None, None, None],
                torch.arange(x.shape[1])[None, :, None, None],
                iy[:, None, :, None],
                ix[:, None, None, :],
            ].reshape(len(pick), -1)
        out.append(rows.double().numpy())
    return out


def _quantize_weights(step: Step, recipe: Recipe, x_fp: torch.Tensor, x_qp: torch.Tensor) -> LayerWeights:
    w = np.asarray(step.node.params["weight"], np.float64)
    w2 = w.reshape(w.shape[0], -1)
    bits = recipe.weight_bits
    scales = WEIGHT_SCALE[recipe.weight_scale](w2, bits, recipe)
    q = quantize_to_int(w2, scales, bits)
    rel_mse = float(((w2 - q * scales[:, None]) ** 2).sum() / max((w2**2).sum(), 1e-30))
    stats = {"weight_rel_mse_single": rel_mse}
    dual = step.node.name in recipe.dual_layers or (recipe.dual_tau is not None and rel_mse > recipe.dual_tau)
    q2 = scales2 = None
    if dual:
        t1, a1, t2, a2 = dual_decompose(w2, bits)
        q, scales, q2, scales2 = t1, a1, t2, a2
    elif (
        recipe.weight_rounding != "nearest"
        and step.kind not in ("depthwise_conv2d", "conv_transpose")
        and int(step.node.attrs.get("groups", 1)) == 1  # _layer_rows gathers dense, undilated taps
        and tuple(step.node.attrs.get("dilation", (1, 1))) == (1, 1)
        and (recipe.opt_max_k is None or w2.shape[1] <= recipe.opt_max_k)
    ):
        q = WEIGHT_ROUNDING[recipe.weight_rounding](
            w2, scales, bits, lambda: _layer_rows(step, [x_fp, x_qp], recipe.opt_rows, recipe.seed), recipe
        )
    lw = LayerWeights(
        q.reshape(w.shape),
        scales,
        np.asarray(step.node.params["bias"], np.float64),
        None if q2 is None else q2.reshape(w.shape),
        scales2,
        stats,
    )
    w_hat = lw.dequantized().reshape(w2.shape)
    stats.update(
        {
            "dual": dual,
            "weight_mse": float(((w2 - w_hat) ** 2).mean()),
            "weight_sqnr_db": _sqnr(w2, w_hat),
            "scale_over_max": (
                scales * int_range(bits)[1] / np.maximum(np.abs(w2).max(axis=1), 1e-30)
            ).tolist(),
        }
    )
    return lw


def _sqnr(ref: np.ndarray, approx: np.ndarray) -> float:
    noise = float(((ref - approx) ** 2).sum())
    sig = float((ref**2).sum())
    return float("inf") if noise == 0 else 10.0 * np.log10(max(sig, 1e-30) / noise)


SQNR_SAMPLES = 128  # calibration samples the per-layer output SQNR statistic is taken on


def _tensor_sqnr(ref: torch.Tensor, approx: torch.Tensor) -> float:
    """``_sqnr`` of two activation tensors, summed in float32 (a statistic, not a decision)."""
    noise = float(torch.sum((ref - approx) ** 2))
    sig = float(torch.sum(ref * ref))
    return float("inf") if noise == 0 else 10.0 * float(np.log10(max(sig, 1e-30) / noise))


def _residual_targets(graph: FloatGraph, steps: list[Step], names: list[str]) -> list[str]:
    """Resolve and check ``residual_activations``: "@last_input" is the tensor that feeds the last
    conv / dense layer (through reshapes, pads, max-pools and clamps, which keep its quantization);
    every name must be the output of an op that requantizes (not the network input or output)."""
    producer = {s.output: s for s in steps}
    weighted = [s for s in steps if s.kind in WEIGHTED_KINDS]
    out = []
    for name in names:
        tensor = name
        if name == "@last_input":
            if not weighted:
                raise Q4Error("recipe field 'residual_activations': '@last_input' needs a conv/dense layer")
            tensor = weighted[-1].inputs[0]
            while tensor in producer and producer[tensor].same_quant:
                tensor = producer[tensor].inputs[0]
        if tensor == graph.input_name:
            raise Q4Error(
                f"recipe field 'residual_activations': '{name}' is the network input (use residual_input)"
            )
        if tensor == graph.output_name:
            raise Q4Error(f"recipe field 'residual_activations': '{name}' is the network output")
        if tensor not in producer:
            raise Q4Error(f"recipe field 'residual_activations': no tensor named '{name}'")
        if producer[tensor].same_quant:
            raise Q4Error(
                f"recipe field 'residual_activations': '{name}' keeps the quantization of "
                f"'{producer[tensor].inputs[0]}' ({producer[tensor].kind}); name that tensor"
            )
        if tensor not in out:
            out.append(tensor)
    return out


def _batched(
    fn, xs: list[torch.Tensor], bs: int = 256, keep: tuple[bool, bool] = (True, True)
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``fn`` (returning (pre-activation, output)) over ``xs`` in batches of ``bs`` samples; the
    parts ``keep`` says are concatenated (the other is None). An output that is the
    pre-activation itself (no activation) stays one tensor."""
    parts: tuple[list, list] = ([], [])
    same = True
    for i in range(0, xs[0].shape[0], bs):
        p, o = fn([x[i : i + bs] for x in xs])
        same = same and o is p
        for k, t in enumerate((p, o)):
            if keep[k]:
                parts[k].append(t)
    pre, out = ((torch.cat(ts) if len(ts) > 1 else ts[0]) if keep[k] else None for k, ts in enumerate(parts))
    if same and keep == (True, True):
        out = pre
    return pre, out


@dataclass
class LayerPass:
    """A conv / dense layer during the calibration pass, as layer steps see and change it."""

    step: Step
    recipe: Recipe
    lw: LayerWeights  # its quantized weights (a step may change the bias or the weights)
    fp_pre: torch.Tensor  # the float model's pre-activation output on the calibration set
    q_pre: torch.Tensor  # the quantized model's, as simulated so far (a step keeps it in sync)


@dataclass
class ModelPass:
    """The whole quantized model after the calibration pass, as model steps see and change it."""

    graph: FloatGraph
    steps: list[Step]
    recipe: Recipe
    qparams: dict
    weights: dict
    calib: np.ndarray  # as the graph holds it (graph.held_input)
    forward: Callable
    residual_input: str | None  # the network input's residual tensor, if any
    progress: Progress
    meta: dict = field(default_factory=dict)  # what the steps record in the .q4 meta
    float_out: torch.Tensor | None = None  # the float network's output on ``calib``
    quant_out: torch.Tensor | None = None  # the quantized network's, as the calibration pass simulated it
    macs: int = 0  # multiply-accumulates of one forward pass of one sample (conv / dense layers)


# Pipeline-level recipe steps, in the order they run: (name, runs for this recipe?, function).
# A layer step runs on every conv / dense layer right after its weights are quantized; a model step
# runs once after the calibration pass, before lowering.
LAYER_STEPS: list[tuple[str, Callable[[Recipe], bool], Callable[[LayerPass], None]]] = [
    ("bias_correction", lambda r: r.bias_correction, correct_layer_bias),
]
MODEL_STEPS: list[tuple[str, Callable[[Recipe], bool], Callable[[ModelPass], None]]] = [
    ("refine", lambda r: r.refine_iters > 0, refine_model),
]


def _warn(messages: list[str]) -> None:
    for m in messages:
        warnings.warn(m, CalibrationWarning, stacklevel=3)


def quantize_graph(
    graph: FloatGraph, calib: np.ndarray, recipe: Recipe | None = None, progress: Progress | None = None
) -> QModel:
    """Quantize ``graph`` using calibration inputs ``calib`` ([N, *graph.input_shape], float32, NCHW).

    Runs on one torch thread (``threads.py``): the same inputs give the same model, whatever the
    caller's thread count."""
    with torch_threads(1):
        return _quantize_graph(graph, calib, recipe, progress)


def _quantize_graph(
    graph: FloatGraph, calib: np.ndarray, recipe: Recipe | None, progress: Progress | None
) -> QModel:
    recipe = recipe or Recipe()
    recipe.validate()
    progress = progress or Progress(enabled=False)
    calib = np.asarray(calib, np.float32)
    if calib.shape[1:] != tuple(graph.input_shape):
        raise Q4Error(
            f"calibration data: sample shape {calib.shape[1:]} does not match the model input "
            f"'{graph.input_name}' {tuple(graph.input_shape)}"
        )
    if not np.isfinite(calib).all():
        raise Q4Error("calibration data: contains NaN or infinite values")
    numerics.check_calibration(calib)
    calib = calib[: recipe.calib_samples]
    if recipe.cle:  # function-preserving rescaling of conv/dense pairs joined by ReLU
        graph = equalize(graph)
    steps = build_plan(graph)
    weighted = [s.node.name for s in steps if s.kind in WEIGHTED_KINDS]
    if recipe.dual_layers and weighted:  # resolve "@first" / "@last"; unknown names are an error
        alias = {"@first": weighted[0], "@last": weighted[-1]}
        names = [alias.get(n, n) for n in recipe.dual_layers]
        unknown = [n for n in names if n not in weighted]
        if unknown:
            raise Q4Error(f"recipe field 'dual_layers': no conv/dense layer named '{unknown[0]}'")
        recipe = Recipe.from_dict({**recipe.to_dict(), "dual_layers": names})
    sensitivity_records = None
    if recipe.sensitivity_budget:  # data-driven dual layers and residual activations
        dual, res, sensitivity_records = choose_by_sensitivity(
            graph, steps, graph.held_input(calib), recipe, _forward
        )
        recipe = Recipe.from_dict(
            {
                **recipe.to_dict(),
                "dual_layers": list(dict.fromkeys(recipe.dual_layers + dual)),
                "residual_activations": list(dict.fromkeys(recipe.residual_activations + res)),
            }
        )
    if recipe.residual_activations:
        recipe = Recipe.from_dict(
            {
                **recipe.to_dict(),
                "residual_activations": _residual_targets(graph, steps, recipe.residual_activations),
            }
        )
    residual_acts = set(recipe.residual_activations)
    torch.manual_seed(recipe.seed)

    act_bits = recipe.activation_bits
    unsigned = recipe.unsigned_activations
    qparams: dict[str, QuantParams] = {}
    weights: dict[str, LayerWeights] = {}
    layer_stats: dict[str, dict] = {}
    numerics_notes: list[dict] = []

    x = torch.as_tensor(graph.held_input(calib))
    fp: dict[str, torch.Tensor] = {graph.input_name: x}
    _warn(check_tensor(graph.input_name, calib, is_input=True))
    qparams[graph.input_name] = QuantParams(
        *ACTIVATION_RANGE[recipe.activation_range](calib, act_bits, unsigned, recipe), act_bits
    )
    qp: dict[str, torch.Tensor] = {graph.input_name: qparams[graph.input_name].fake(x)}
    if recipe.residual_input:  # X ~ X1 + X2: the second INT4 tensor quantizes the first one's error
        for s in steps:
            if graph.input_name in s.inputs and s.kind not in WEIGHTED_KINDS:
                raise Q4Error(
                    f"node '{s.node.name}': a residual-quantized input must feed conv/dense layers only"
                )
        p1 = qparams[graph.input_name]
        qparams[residual_name(graph.input_name)] = QuantParams(p1.scale / (1 << act_bits), 0, act_bits)
        qp[graph.input_name] = qp[graph.input_name] + qparams[residual_name(graph.input_name)].fake(
            x - qp[graph.input_name]
        )
    macs = 0
    remaining = {}
    for s in steps:
        for i in s.inputs:
            remaining[i] = remaining.get(i, 0) + 1

    with torch.no_grad():
        for idx, step in enumerate(steps):
            progress.update(idx, len(steps), f"{step.kind} {step.node.name}")
            weighted_step = step.kind in WEIGHTED_KINDS
            fp_pre, fp_out = _batched(
                lambda xs: _forward(step, xs), [fp[i] for i in step.inputs], keep=(weighted_step, True)
            )
            numerics.check_finite(step.node.name, fp_out)
            if weighted_step:
                lw = _quantize_weights(step, recipe, fp[step.inputs[0]], qp[step.inputs[0]])
                w_hat = lw.dequantized()
                pre_q, _ = _batched(
                    lambda xs: _forward(step, xs, weight=w_hat, bias=lw.bias, with_act=False),
                    [qp[i] for i in step.inputs],
                    keep=(True, False),
                )
                layer = LayerPass(step, recipe, lw, fp_pre, pre_q)
                for _, wanted, layer_step in LAYER_STEPS:
                    if wanted(recipe):
                        layer_step(layer)
                weights[step.node.name] = lw
                macs += fp_pre[0].numel() // lw.q.shape[0] * lw.q.size  # positions x weights
                q_out = _apply_act(layer.q_pre, step.act)
            else:
                _, q_out = _batched(
                    lambda xs: _forward(step, xs), [qp[i] for i in step.inputs], keep=(False, True)
                )
            if step.same_quant:
                qparams[step.output] = qparams[step.inputs[0]]
            else:
                bits = recipe.output_bits if step.output == graph.output_name else act_bits
                values = q_out.contiguous().numpy()
                _warn(check_tensor(step.output, values))
                qparams[step.output] = QuantParams(
                    *ACTIVATION_RANGE[recipe.activation_range](values, bits, unsigned, recipe), bits
                )
                qparams[step.output] = numerics.floor_output_scale(  # zero / tiny ranges (dead ReLU)
                    step,
                    qparams[step.output],
                    [qparams[i].scale for i in step.inputs],
                    weights.get(step.node.name),
                    numerics_notes,
                )
                if step.output in residual_acts:  # X1 + X2 held as one 8-bit tensor on X2's grid
                    p1 = qparams[step.output]
                    qparams[step.output] = QuantParams(
                        p1.scale / (1 << bits), fine_zero_point(p1.zero_point, bits), 8
                    )
            fp[step.output] = fp_out
            qp[step.output] = qparams[step.output].fake(q_out)
            layer_stats[step.node.name] = {
                "output_sqnr_db": _tensor_sqnr(fp_out[:SQNR_SAMPLES], qp[step.output][:SQNR_SAMPLES]),
                **({"residual_output": True} if step.output in residual_acts else {}),
                **(weights[step.node.name].stats if step.node.name in weights else {}),
            }
            for i in step.inputs:  # free calibration activations nobody needs any more
                remaining[i] -= 1
                if remaining[i] == 0 and i != graph.input_name:
                    fp.pop(i, None)
                    qp.pop(i, None)
    model_pass = ModelPass(
        graph,
        steps,
        recipe,
        qparams,
        weights,
        graph.held_input(calib),
        _forward,
        residual_name(graph.input_name) if recipe.residual_input else None,
        progress,
        float_out=fp[graph.output_name],
        quant_out=qp[graph.output_name],
        macs=macs,
    )
    for _, wanted, model_step in MODEL_STEPS:
        if wanted(recipe):
            model_step(model_pass)
    progress.done(f"quantized {len(steps)} layers")

    model = lower(graph, steps, qparams, weights, recipe)
    model.meta["layer_stats"] = numerics.finite_stats(layer_stats)
    numerics_notes += numerics.lowering_notes(weights)
    if numerics_notes:
        model.meta["numerics"] = numerics_notes
    model.meta.update(model_pass.meta)
    if sensitivity_records is not None:
        model.meta["sensitivity"] = sensitivity_records
    model.meta["recipe_version"] = RECIPE_VERSION
    return model
