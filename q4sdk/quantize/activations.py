"""Per-tensor activation quantization parameters from calibration samples.

``mmse`` (default) searches the clipping range that minimises the quantization MSE on the calibration
values over a grid (Choukroun et al. 2019 use 50 points; we default to 100); ``minmax`` uses the
observed range. Signed tensors are symmetric (zero point 0). Unsigned tensors ("unsigned with
offset") use the full code range: a non-negative tensor maps [0, clip] onto [qmin, qmax] with zero
point qmin; a tensor with both signs gets an asymmetric range [lo, hi] shrunk by the same factor.
"""
from __future__ import annotations

import numpy as np
import torch

from .weights import int_range

MAX_SAMPLES = 1 << 20


def subsample(x: np.ndarray, max_samples: int = MAX_SAMPLES, seed: int = 0) -> np.ndarray:
    x = np.asarray(x, np.float32).ravel()
    if x.size > max_samples:
        idx = np.random.default_rng(seed).choice(x.size, max_samples, replace=False)
        x = x[idx]
    return x


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


def _fake_quant(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    return (torch.clamp(torch.round(x / scale) + zp, qmin, qmax) - zp) * scale


def activation_params(x: np.ndarray, bits: int, unsigned: bool, method: str = "mmse",
                      n_grid: int = 100) -> tuple[float, int]:
    """Calibration values -> (scale, zero_point)."""
    v = subsample(x)
    lo, hi = float(v.min()), float(v.max())
    if method == "minmax":
        return _params_for_range(lo, hi, bits, unsigned)
    if method != "mmse":
        raise ValueError(f"unknown activation range method '{method}'")
    qmin, qmax = int_range(bits)
    xt = torch.as_tensor(v, dtype=torch.float32)
    fracs = np.arange(1, n_grid + 1) / n_grid
    cands = [_params_for_range(lo * f, hi * f, bits, unsigned) for f in fracs]
    scales = torch.tensor([c[0] for c in cands], dtype=torch.float32)[:, None]
    zps = torch.tensor([c[1] for c in cands], dtype=torch.float32)[:, None]
    errs = torch.zeros(n_grid, dtype=torch.float64)
    for start in range(0, xt.numel(), 1 << 16):
        chunk = xt[start:start + (1 << 16)][None, :]
        errs += ((chunk - _fake_quant(chunk, scales, zps, qmin, qmax)) ** 2).sum(dim=1).double()
    return cands[int(torch.argmin(errs))]
