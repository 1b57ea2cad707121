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


# Above this many error evaluations (O * K * n_grid) a layer's search goes coarse to fine.
EXHAUSTIVE_LIMIT = 64_000_000


def mmse_scales_grid(w: np.ndarray, bits: int = 4, n_grid: int = 500) -> np.ndarray:
    """Grid line search of the per-kernel MMSE scale; w [O, K] -> scales [O] (float64).

    Small layers (``O * K * n_grid <= EXHAUSTIVE_LIMIT``) try every grid point, in float64. Larger
    ones first try every ``stride``-th point (``stride ~ sqrt(n_grid)``), then every point within
    one stride of each kernel's best coarse point, in float32: about ``3 sqrt(n_grid)`` points
    instead of ``n_grid``, so the time grows with the weight count, not with the grid."""
    wt = torch.as_tensor(np.asarray(w, np.float64))
    if wt.numel() * n_grid <= EXHAUSTIVE_LIMIT:
        return _search(wt, bits, torch.arange(1, n_grid + 1, dtype=torch.float64)[None, :] / n_grid).numpy()
    stride = max(2, int(round(np.sqrt(n_grid))))
    coarse = torch.unique(torch.cat([torch.arange(stride, n_grid + 1, stride), torch.tensor([n_grid])]))
    wf = wt.float()
    s0 = _search(wf, bits, (coarse.double() / n_grid).float()[None, :])
    amax = _amax(wt)
    j = torch.round(s0.double() / (amax / ((1 << (bits - 1)) - 1)) * n_grid)  # best coarse index per kernel
    fine = (j[:, None] + torch.arange(-stride + 1, stride, dtype=torch.float64)[None, :]).clamp(1, n_grid)
    return _search(wf, bits, (fine / n_grid).float()).double().numpy()


def _amax(wt: torch.Tensor) -> torch.Tensor:
    amax = wt.abs().amax(dim=1)
    return torch.where(amax > 0, amax, torch.ones_like(amax))


def _search(wt: torch.Tensor, bits: int, fracs: torch.Tensor) -> torch.Tensor:
    """The best of the scales ``fracs * max|w| / qmax`` per kernel (``fracs`` [1, G] shared or
    [O, G] per kernel), in ``wt``'s dtype; the first best on ties."""
    lo, hi = int_range(bits)
    amax = _amax(wt)
    n_grid = fracs.shape[1]
    best_err = torch.full((wt.shape[0],), float("inf"), dtype=wt.dtype)
    best_s = amax / hi
    # chunk the grid so that O * chunk * K stays around 8M elements
    chunk = max(1, int(8_000_000 // max(1, wt.numel())))
    for start in range(0, n_grid, chunk):
        f = fracs[:, start : start + chunk]
        s = (amax[:, None] / hi) * f  # [O, G]
        q = (wt[:, None, :] / s[:, :, None]).round_().clamp_(lo, hi)
        err = q.mul_(s[:, :, None]).sub_(wt[:, None, :]).pow_(2).sum(dim=2)  # [O, G] squared errors
        e, j = err.min(dim=1)
        better = e < best_err
        best_err = torch.where(better, e, best_err)
        best_s = torch.where(better, s.gather(1, j[:, None])[:, 0], best_s)
    return best_s


def weight_mse(w: np.ndarray, q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per-kernel mean squared error of the quantized weights."""
    return ((np.asarray(w, np.float64) - q * np.asarray(scales)[:, None]) ** 2).mean(axis=1)
