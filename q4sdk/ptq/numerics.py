"""Numerics that survive trained weights: a sound integer form for degenerate but legitimate layers.

A model that runs in float is never refused for numeric reasons. The cases, and what is done
(each one recorded in ``meta["numerics"]``, which ``q4sdk report`` prints):

* **Bias that does not fit** (``zero_kernel`` / ``coarse_kernel``). A kernel of 1e-30 (a "dead"
  channel of a trained, BatchNorm-folded model) gets a weight scale of ~1e-31 and
  ``bias / (S_in * S_w)`` overflows int32. The integer bias must obey the accumulator bound
  ``|bias| + 2040 K < 2^31`` (docs/integer-spec.md), so the channel's weight scale is raised to the
  smallest one that keeps the bias inside that budget and the kernel is re-rounded at it. When the
  kernel then rounds to all zeros (the usual case), the channel computes ``y = bias`` only, and the
  weight scale is free: it is chosen so the requantization multiplier is ``2^-p`` with the largest
  ``p <= 32`` that keeps ``round(bias / S_y * 2^p)`` in the budget, which represents the bias to a
  fraction of an output step (an output that saturates keeps the budget's bias and saturates the
  same way). A kernel whose scale is 0 with a non-zero bias is the same case (the bias used to be
  dropped). A dual layer's second tensor is zeroed for such a channel.
* **Output range zero or tiny** (``output_scale_floor``): a dead ReLU, a constant or all-zero
  tensor on the calibration set. Its scale would be ~1e-14 and the multipliers ``S_in S_w / S_y``
  too large. The scale is raised to ``2^-16`` of the layer's input step (``S_in * max S_w`` for
  conv/dense, ``max(S_a, S_b)`` for add, ``S_in / window`` for pools): values below that are below
  what the layer's integer arithmetic resolves anyway, and every multiplier stays in range.
* **Requantization multiplier >= 2^30** (``saturating_multiplier``; only reachable if refinement
  shrinks a floored scale): one accumulator step moves the output by more than 2^30 codes, so any
  non-zero accumulator saturates and a zero one gives ``z_y``. ``m = 2^31 - 1, s = 1`` does exactly
  the same, so it is used: the result is exact. (A multi-term layer is rescaled per channel, which
  keeps its sign and saturation behaviour.)
* **Multiplier below 2^-32** (``negligible_multiplier``): ``|acc * M| < 1/2`` for every int32
  accumulator, so the contribution always rounds to 0; ``m = 0`` gives exactly that.
* **Not a number**: NaN/Inf weights are refused by the frontend, non-finite float activations
  (overflow in the float model itself) and an all-zero calibration set here, naming the layer / data.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from q4sdk.errors import Q4Error
from q4sdk.ir import fixedpoint
from q4sdk.ir.ops import WEIGHTED_KINDS
from q4sdk.ptq.weights import int_range

ACC_TERM = 2040  # max |x - z_x| * |w| per weight: 255 * 8 (docs/integer-spec.md, conv2d)
SCALE_FLOOR = 2.0**-16  # an output step is at least this fraction of the layer's input step
MAX_ZERO_KERNEL_SHIFT = 32  # multiplier 2^-p, m = 2^30, s = 30 + p <= 62


def bias_budget(k: int) -> int:
    """Largest |integer bias| of a layer with K weights per output: ``|bias| + 2040 K < 2^31``."""
    return (1 << 31) - 1 - ACC_TERM * k


# ---------------------------------------------------------------- checks before and during calibration


def check_calibration(calib: np.ndarray) -> None:
    """An all-zero calibration set says nothing about the input range: refuse it."""
    if calib.size and not np.any(calib):
        raise Q4Error(
            "calibration data: every value is 0, so the input range cannot be calibrated "
            "(pass real samples of the model's input)"
        )


def check_finite(layer: str, values) -> None:
    """The float model's own output of ``layer`` on the calibration set must be finite."""
    import torch

    if bool(torch.isfinite(values.sum())):  # a finite sum has finite terms: one reduction suffices
        return
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        sample = int(bad.reshape(bad.shape[0], -1).any(dim=1).nonzero()[0, 0])
        raise Q4Error(
            f"node '{layer}': the float model's output is not finite (NaN or Inf) on calibration "
            f"sample {sample}: it overflows in float32; the model does not run as it is"
        )


# ---------------------------------------------------------------- output scales


def _input_unit(step, in_scales: list[float], lw) -> float | None:
    """One step of the layer's integer arithmetic, in real units (see the module docstring)."""
    if step.kind in WEIGHTED_KINDS and lw is not None:
        w_max = max(float(np.max(s, initial=0.0)) for _, s in lw.terms())
        return max(in_scales) * w_max
    if step.kind in ("add", "concat"):
        return max(in_scales)
    if step.kind == "addsub":
        return max(in_scales)
    if step.kind == "mul":
        return in_scales[0] * in_scales[1]
    if step.kind == "avgpool":
        return in_scales[0] / float(np.prod(step.node.attrs["kernel"]))
    if step.kind == "global_avgpool":
        return in_scales[0]  # the window size H W is not divided out: M stays below 2^16 / (H W)
    return None


def floor_output_scale(step, params, in_scales: list[float], lw, notes: list) -> object:
    """``params`` (a QuantParams) with its scale raised to ``SCALE_FLOOR`` of the input step when
    the calibrated range is zero or tiny; the zero point keeps the range's lower end."""
    unit = _input_unit(step, in_scales, lw)
    if unit is None or not unit > 0:
        return params
    floor = unit * SCALE_FLOOR
    if params.scale >= floor:
        return params
    qmin, qmax = int_range(params.bits)
    lo = (qmin - params.zero_point) * params.scale  # the real value of the lowest code
    zp = params.zero_point if params.zero_point == 0 else int(np.clip(round(qmin - lo / floor), qmin, qmax))
    notes.append(
        {
            "tensor": step.output,
            "layer": step.node.name,
            "case": "output_scale_floor",
            "calibrated_scale": float(params.scale),
            "scale": float(floor),
        }
    )
    return dataclasses.replace(params, scale=float(floor), zero_point=zp)


# ---------------------------------------------------------------- weights and bias


def fit_bias(step, lw, in_scales: list[float], sy: float) -> None:
    """Give every output channel whose integer bias would not fit (or whose weight scale is 0 with a
    non-zero bias) a sound form, in place (``lw.q``, ``lw.scales``, dual terms); records go to
    ``lw.stats["numerics"]``."""
    w = np.asarray(step.node.params["weight"], np.float64)
    n_out = w.shape[0]
    w2 = w.reshape(n_out, -1)
    budget = bias_budget(w2.shape[1])
    if budget <= 0:
        return  # a layer too large for int32 accumulators: the lowering says so
    sx = float(in_scales[0])
    bias = np.asarray(lw.bias, np.float64)
    lo, hi = int_range(4)  # weights are INT4 (Recipe.validate)
    q = lw.q.reshape(n_out, -1)
    for o in range(n_out):
        a1 = float(lw.scales[o])
        b = float(bias[o])
        if a1 > 0 and abs(b) / (sx * a1) <= budget:
            continue
        if a1 <= 0 and b == 0:
            continue
        s_need = abs(b) / (sx * budget) * (1 + 1e-6)
        requant = np.clip(np.rint(w2[o] / s_need), lo, hi) if s_need > 0 else np.zeros_like(w2[o])
        record = {
            "layer": step.node.name,
            "channel": int(o),
            "bias": b,
            "max_abs_weight": float(np.abs(w2[o]).max(initial=0.0)),
            "weight_scale_before": a1,
        }
        if requant.any():
            q[o] = requant.astype(q.dtype)
            scale, case = s_need, "coarse_kernel"
        else:
            q[o] = 0
            codes = abs(b) / sy  # the bias in output steps
            p = (
                MAX_ZERO_KERNEL_SHIFT
                if codes == 0
                else int(np.clip(math.floor(math.log2(budget / codes)), 0, MAX_ZERO_KERNEL_SHIFT))
            )
            scale, case = max(2.0**-p * sy / sx, s_need), "zero_kernel"
        lw.scales[o] = scale
        if lw.q2 is not None:
            lw.q2.reshape(n_out, -1)[o] = 0
            lw.scales2[o] = 0.0
        record.update(case=case, weight_scale=float(scale))
        lw.stats.setdefault("numerics", []).append(record)
    lw.q = q.reshape(lw.q.shape)


# ---------------------------------------------------------------- multipliers


def requant_multipliers(layer: str, reals: np.ndarray, notes: list) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers ([O], or [T, O] for a multi-term layer) -> (multiplier, shift), with the
    saturating and negligible cases of the module docstring encoded exactly."""
    r = np.asarray(reals, np.float64)
    if r.ndim == 1 or r.shape[0] == 1:
        flat = r.reshape(-1)
        pairs = []
        for o, v in enumerate(flat):
            if v >= fixedpoint.MULT_MIN:
                pairs.append((fixedpoint.MULT_MAX, fixedpoint.SHIFT_MIN))
                notes.append(
                    {"layer": layer, "channel": o, "case": "saturating_multiplier", "real": float(v)}
                )
            elif 0 < v < 2.0**-32:
                pairs.append((0, fixedpoint.SHIFT_MIN))
                notes.append(
                    {"layer": layer, "channel": o, "case": "negligible_multiplier", "real": float(v)}
                )
            else:
                pairs.append(fixedpoint.quantize_multiplier(float(v)))
        return (np.array([p[0] for p in pairs], np.int32), np.array([p[1] for p in pairs], np.int32))
    limit = 2.0**27
    big = np.abs(r).max(axis=0)
    for o in np.nonzero(big >= limit)[0]:
        r[:, o] *= limit / big[o]
        notes.append(
            {"layer": layer, "channel": int(o), "case": "saturating_multiplier", "real": float(big[o])}
        )
    return fixedpoint.quantize_term_multipliers(r)


def lowering_notes(weights: dict) -> list:
    """The records ``fit_bias`` left in the layers' stats, in layer order."""
    return [r for lw in weights.values() for r in lw.stats.get("numerics", [])]


def finite_stats(layer_stats: dict) -> dict:
    """Layer statistics with infinite SQNRs (an exact layer: zero noise) as None, so they can be saved."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return clean(layer_stats)


def summary(notes: list) -> str:
    """One line for the report: how many channels / tensors each case touched."""
    counts: dict[str, int] = {}
    for n in notes:
        counts[n["case"]] = counts.get(n["case"], 0) + 1
    return ", ".join(f"{case.replace('_', ' ')}: {k}" for case, k in sorted(counts.items()))
