"""Per-tensor activation quantization parameters from calibration samples.

``mmse`` (default) searches the clipping range that minimises the quantization MSE on the calibration
values over a grid (Choukroun et al. 2019 use 50 points; we default to 100); ``minmax`` uses the
observed range; ``aciq_laplace`` / ``aciq_gauss`` clip analytically for a Laplace / Gauss prior
fitted to the values (``aciq.py``). Signed tensors are symmetric (zero point 0). Unsigned tensors ("unsigned with
offset") use the full code range: a non-negative tensor maps [0, clip] onto [qmin, qmax] with zero
point qmin; a tensor with both signs gets an asymmetric range [lo, hi] shrunk by the same factor.
"""
from __future__ import annotations

import numpy as np
import torch

from q4sdk.ptq.aciq import aciq_clip
from q4sdk.ptq.weights import int_range

HIST_BINS = 8192


def _histogram(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """All calibration values -> (bin centres, counts, min, max); the MSE is evaluated on it."""
    xt = torch.as_tensor(np.asarray(x, np.float32).ravel())
    lo, hi = float(xt.min()), float(xt.max())
    if hi <= lo:
        return np.array([lo]), np.array([float(xt.numel())]), lo, hi
    counts = torch.histc(xt, HIST_BINS, lo, hi).double().numpy()
    edges = np.linspace(lo, hi, HIST_BINS + 1)
    return (edges[:-1] + edges[1:]) / 2, counts, lo, hi


def _params_for_range(lo: float, hi: float, bits: int, unsigned: bool) -> tuple[float, int]:
    qmin, qmax = int_range(bits)
    if not unsigned:
        amax = max(abs(lo), abs(hi), 1e-12)
        return amax / qmax, 0
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-12
    scale = (hi - lo) / (qmax - qmin)
    zp = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return scale, zp


def quant_mse(centres: np.ndarray, counts: np.ndarray, scale: np.ndarray, zp: np.ndarray,
              bits: int) -> np.ndarray:
    """MSE of fake-quantizing a histogram for each (scale, zero point) candidate (vectorised)."""
    qmin, qmax = int_range(bits)
    s = np.asarray(scale, np.float64)[:, None]
    z = np.asarray(zp, np.float64)[:, None]
    fq = (np.clip(np.rint(centres[None, :] / s) + z, qmin, qmax) - z) * s
    return (((centres[None, :] - fq) ** 2) * counts[None, :]).sum(axis=1) / max(counts.sum(), 1.0)


def aciq_range(x: np.ndarray, lo: float, hi: float, bits: int, unsigned: bool, prior: str) -> tuple[float, float]:
    """The clipped range ACIQ picks for values ``x`` in [lo, hi].

    A non-negative tensor is the positive half of the prior on ``2^bits - 1`` steps (unsigned) or
    on the positive half of the signed grid, ``2^(bits-1) - 1`` steps; a tensor with both signs is
    clipped symmetrically with the two-sided prior and the range cut to the observed one.
    """
    if lo >= 0.0:
        return 0.0, aciq_clip(x, bits if unsigned else bits - 1, prior, signed=False)
    alpha = aciq_clip(x, bits, prior, signed=True)
    return max(lo, -alpha), min(hi, alpha)


def activation_params(x: np.ndarray, bits: int, unsigned: bool, method: str = "mmse",
                      n_grid: int = 100) -> tuple[float, int]:
    """Calibration values -> (scale, zero_point)."""
    centres, counts, lo, hi = _histogram(x)
    if method == "minmax":
        return _params_for_range(lo, hi, bits, unsigned)
    if method.startswith("aciq_"):
        return _params_for_range(*aciq_range(x, lo, hi, bits, unsigned, method[5:]), bits, unsigned)
    if method != "mmse":
        raise ValueError(f"unknown activation range method '{method}'")
    fracs = np.arange(1, n_grid + 1) / n_grid
    cands = [_params_for_range(lo * f, hi * f, bits, unsigned) for f in fracs]
    errs = quant_mse(centres, counts, np.array([c[0] for c in cands]), np.array([c[1] for c in cands]), bits)
    return cands[int(np.argmin(errs))]
