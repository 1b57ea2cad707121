"""Residual quantization of sensitive activations: ``x ~ beta1 X1 + beta2 X2`` (Choukroun et al. 2019).

A tensor that one low-bit tensor represents poorly is quantized twice: ``X1`` with the usual
scale ``beta1 = clip / qmax`` (signed or unsigned grid), then the residual ``r = x - beta1 X1`` with
its own signed grid and the MMSE scale ``beta2`` of r (``scale_search.alternating_scales`` on r
seen as one kernel). In-range values leave a residual within ``beta1 / 2`` that X2 refines;
clipped values leave a large residual that X2 partly restores. The layer that consumes x then
runs on both integer tensors and adds the two results with their scales, at twice the cost.

beta1 and beta2 are calibration-time constants: at inference the runtime recomputes X1 and
``X2 = clamp(round((x - beta1 X1) / beta2))`` for each input with the same formulas.
"""
from __future__ import annotations

import numpy as np

from q4sdk.ptq.scale_search import alternating_scales


def _grid(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _to_int(v: np.ndarray, scale: float, lo: int, hi: int) -> np.ndarray:
    dtype = np.int8 if hi <= 127 else np.int16
    if scale <= 0:
        return np.zeros(v.shape, dtype)
    return np.clip(np.rint(v / scale), lo, hi).astype(dtype)


def residual_quantize(x: np.ndarray, bits: int, signed: bool, clip: float | None = None
                      ) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Return ``(X1, beta1, X2, beta2)`` with ``x ~ beta1 * X1 + beta2 * X2`` elementwise.

    X1 is on the ``bits`` grid (signed or unsigned), X2 always on the signed ``bits`` grid; both
    int8 (int16 for unsigned 8-bit X1), same shape as x. ``clip`` defaults to max|x|.
    """
    x = np.asarray(x, np.float64)
    lo1, hi1 = _grid(bits, signed)
    lo2, hi2 = _grid(bits, True)
    if clip is None:
        clip = float(np.abs(x).max()) if x.size else 0.0
    if clip < 0:
        raise ValueError(f"residual_quantize: clip must be >= 0, got {clip}")
    beta1 = clip / hi1
    x1 = _to_int(x, beta1, lo1, hi1)
    r = x - beta1 * x1
    beta2 = float(alternating_scales(r.reshape(1, -1), bits)[0]) if np.any(r) else 0.0
    x2 = _to_int(r, beta2, lo2, hi2)
    return x1, beta1, x2, beta2


def residual_mse_gain(x: np.ndarray, bits: int, signed: bool = True, clip: float | None = None) -> float:
    """MSE of single quantization (same clip) divided by the MSE of residual quantization."""
    x = np.asarray(x, np.float64)
    x1, beta1, x2, beta2 = residual_quantize(x, bits, signed, clip)
    mse1 = float(np.mean((x - beta1 * x1) ** 2))
    mse2 = float(np.mean((x - beta1 * x1 - beta2 * x2) ** 2))
    return mse1 / mse2 if mse2 > 0 else float("inf")
