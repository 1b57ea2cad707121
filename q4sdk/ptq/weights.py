"""Per-kernel (per output channel) symmetric weight quantization scales.

The default is the MMSE scale found by exact line search over a grid (Choukroun et al. 2019): for
every kernel, the scale among ``n_grid`` candidates in (0, max|w| / qmax] that minimises
``||w - s * clamp(round(w / s), qmin, qmax)||^2``. All kernels of a layer are searched at once.
"""
from __future__ import annotations

import numpy as np
import torch


def int_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def quantize_to_int(w: np.ndarray, scales: np.ndarray, bits: int = 4) -> np.ndarray:
    """w [O, K], scales [O] -> int8 [O, K] by round-half-to-even and clamp."""
    lo, hi = int_range(bits)
    s = np.asarray(scales, np.float64)[:, None]
    return np.clip(np.rint(np.asarray(w, np.float64) / s), lo, hi).astype(np.int8)


def minmax_scales(w: np.ndarray, bits: int = 4) -> np.ndarray:
    _, hi = int_range(bits)
    amax = np.abs(w).max(axis=1)
    return np.where(amax > 0, amax / hi, 1.0).astype(np.float64)


def mmse_scales_grid(w: np.ndarray, bits: int = 4, n_grid: int = 500) -> np.ndarray:
    """Exact grid line search of the per-kernel MMSE scale; w [O, K] -> scales [O] (float64)."""
    lo, hi = int_range(bits)
    wt = torch.as_tensor(np.asarray(w, np.float64))
    amax = wt.abs().amax(dim=1)
    amax = torch.where(amax > 0, amax, torch.ones_like(amax))
    fracs = torch.arange(1, n_grid + 1, dtype=torch.float64) / n_grid
    best_err = torch.full((wt.shape[0],), float("inf"), dtype=torch.float64)
    best_s = amax / hi
    # chunk the grid so that O * chunk * K stays around 8M elements
    chunk = max(1, int(8_000_000 // max(1, wt.numel())))
    for start in range(0, n_grid, chunk):
        f = fracs[start:start + chunk]
        s = (amax[:, None] / hi) * f[None, :]  # [O, G]
        q = torch.clamp(torch.round(wt[:, None, :] / s[:, :, None]), lo, hi)
        err = ((wt[:, None, :] - q * s[:, :, None]) ** 2).sum(dim=2)  # [O, G]
        e, j = err.min(dim=1)
        better = e < best_err
        best_err = torch.where(better, e, best_err)
        best_s = torch.where(better, s.gather(1, j[:, None])[:, 0], best_s)
    return best_s.numpy()


def weight_mse(w: np.ndarray, q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per-kernel mean squared error of the quantized weights."""
    return ((np.asarray(w, np.float64) - q * np.asarray(scales)[:, None]) ** 2).mean(axis=1)
