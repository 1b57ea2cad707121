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

from q4sdk.ptq.weights import int_range

HIST_BINS = 8192
# The bulk of a tensor's values lies between its BULK_TAIL and 1 - BULK_TAIL quantiles; values
# more than OUTLIER_FACTOR times as far from 0 as the bulk's edge on their side are outliers.
BULK_TAIL = 1e-4
OUTLIER_FACTOR = 4.0
_QUANTILE_SAMPLE = 1 << 20  # the quantiles are taken on an evenly strided subsample of this size


def bulk_range(x: np.ndarray) -> tuple[float, float]:
    """The ``BULK_TAIL`` and ``1 - BULK_TAIL`` quantiles of ``x`` (on a strided subsample)."""
    flat = np.asarray(x, np.float32).ravel()
    sub = flat[:: max(1, flat.size // _QUANTILE_SAMPLE)]
    k = int(BULK_TAIL * (sub.size - 1))
    part = np.partition(sub, (k, sub.size - 1 - k))
    return float(part[k]), float(part[sub.size - 1 - k])


def search_range(lo: float, hi: float, blo: float, bhi: float) -> tuple[float, float]:
    """The part of the extent ``[lo, hi]`` the clipping search covers: all of it, unless a side
    reaches more than ``OUTLIER_FACTOR`` times beyond the bulk edge ``blo`` / ``bhi`` of that side."""
    if bhi > 0 and hi > OUTLIER_FACTOR * bhi:
        hi = OUTLIER_FACTOR * bhi
    if blo < 0 and lo < OUTLIER_FACTOR * blo:
        lo = OUTLIER_FACTOR * blo
    return lo, hi


class _Histogram:
    """Calibration values as a histogram of ``HIST_BINS`` bins over ``[lo, hi]``, the search range
    (``robust``) or the whole extent. Values beyond the search range (outliers) are left out of
    the histogram: whatever range is chosen clips them, and their clipping error, which would
    pull the range towards them (a single 1e5 pixel outweighs the rounding noise of every other
    value), is not what the range should minimise."""

    def __init__(self, x: np.ndarray, robust: bool = True):
        xt = torch.as_tensor(np.asarray(x, np.float32).ravel())
        self.min, self.max = float(xt.min()), float(xt.max())
        self.lo, self.hi = self.min, self.max
        if robust and self.max > self.min:
            self.lo, self.hi = search_range(self.min, self.max, *bulk_range(x))
        if self.hi <= self.lo:
            self.centres, self.counts = np.array([self.lo]), np.array([float(xt.numel())])
            return
        self.counts = torch.histc(xt, HIST_BINS, self.lo, self.hi).double().numpy()
        edges = np.linspace(self.lo, self.hi, HIST_BINS + 1)
        self.centres = (edges[:-1] + edges[1:]) / 2


def _histogram(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """All calibration values -> (bin centres, counts, min, max) over their whole extent."""
    h = _Histogram(x, robust=False)
    return h.centres, h.counts, h.min, h.max


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


def quant_mse(
    centres: np.ndarray, counts: np.ndarray, scale: np.ndarray, zp: np.ndarray, bits: int
) -> np.ndarray:
    """MSE of fake-quantizing a histogram for each (scale, zero point) candidate (vectorised)."""
    qmin, qmax = int_range(bits)
    s = np.asarray(scale, np.float64)[:, None]
    z = np.asarray(zp, np.float64)[:, None]
    fq = (np.clip(np.rint(centres[None, :] / s) + z, qmin, qmax) - z) * s
    return (((centres[None, :] - fq) ** 2) * counts[None, :]).sum(axis=1) / max(counts.sum(), 1.0)


def aciq_range(
    x: np.ndarray, lo: float, hi: float, bits: int, unsigned: bool, prior: str
) -> tuple[float, float]:
    """The clipped range ACIQ picks for values ``x`` in [lo, hi].

    A non-negative tensor is the positive half of the prior on ``2^bits - 1`` steps (unsigned) or
    on the positive half of the signed grid, ``2^(bits-1) - 1`` steps; a tensor with both signs is
    clipped symmetrically with the two-sided prior and the range cut to the observed one.
    """
    from q4sdk.ptq.aciq import aciq_clip

    if lo >= 0.0:
        return 0.0, aciq_clip(x, bits if unsigned else bits - 1, prior, signed=False)
    alpha = aciq_clip(x, bits, prior, signed=True)
    return max(lo, -alpha), min(hi, alpha)


def activation_params(
    x: np.ndarray, bits: int, unsigned: bool, method: str = "mmse", n_grid: int = 100
) -> tuple[float, int]:
    """Calibration values -> (scale, zero_point).

    ``mmse`` searches clip ranges at 1/n_grid ... n_grid/n_grid of the search range: the whole
    extent, or, when outliers lie far beyond the bulk (``search_range``), the range up to
    ``OUTLIER_FACTOR`` times the bulk's edges (the outliers are then clipped, see ``_Histogram``)."""
    if method == "minmax":
        _, _, lo, hi = _histogram(x)
        return _params_for_range(lo, hi, bits, unsigned)
    if method.startswith("aciq_"):
        _, _, lo, hi = _histogram(x)
        return _params_for_range(*aciq_range(x, lo, hi, bits, unsigned, method[5:]), bits, unsigned)
    if method != "mmse":
        raise ValueError(f"unknown activation range method '{method}'")
    h = _Histogram(x)
    fracs = np.arange(1, n_grid + 1) / n_grid
    cands = [_params_for_range(h.lo * f, h.hi * f, bits, unsigned) for f in fracs]
    errs = quant_mse(
        h.centres, h.counts, np.array([c[0] for c in cands]), np.array([c[1] for c in cands]), bits
    )
    return cands[int(np.argmin(errs))]
