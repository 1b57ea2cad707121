"""Alternative per-kernel MMSE scale searches (baselines for the grid line search).

All functions take a layer's weight ``W [O, K]`` and return per-kernel scales ``[O]`` (float64)
for the symmetric signed grid ``q = clamp(round(w / s), qmin, qmax)``, aiming to minimise the
per-kernel error ``e(s) = ||w - s * q(w / s)||^2``. Choukroun et al. 2019 (arXiv 1902.06822)
compare such searches; the pipeline's default is ``weights.mmse_scales_grid``.

* ``golden_section_scales``: golden-section search of ``e(s)`` on ``[0.05, 1] * max|w| / qmax``.
  ``e`` is piecewise quadratic and not unimodal, so this can stop in a local minimum.
* ``alternating_scales``: coordinate descent on ``(s, q)``: ``q = clamp(round(w / s))`` (optimal q
  for a given s), then ``s = <w, q> / <q, q>`` (optimal s for a given q), from several starts.
* ``exact_scales``: the global optimum, by enumerating every interval of ``s`` on which ``q(w/s)``
  is constant (``K * 2^(bits-1) + 1`` intervals per kernel, each solved by least squares). Exact but
  ``O(K^2 * 2^bits)`` work per kernel: use it on small kernels or as a test oracle.
"""

from __future__ import annotations

import numpy as np

from q4sdk.ptq.weights import int_range, minmax_scales, quantize_to_int

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def kernel_sq_error(w: np.ndarray, scales: np.ndarray, bits: int = 4) -> np.ndarray:
    """Per-kernel squared error ``||w - s * q(w / s)||^2``; w [O, K], scales [O] -> [O]."""
    w = np.asarray(w, np.float64)
    q = quantize_to_int(w, scales, bits).astype(np.float64)
    return ((w - q * np.asarray(scales, np.float64)[:, None]) ** 2).sum(axis=1)


def golden_section_scales(w: np.ndarray, bits: int = 4, iters: int = 40) -> np.ndarray:
    """Golden-section search of the per-kernel scale on ``[0.05, 1] * max|w| / qmax``.

    Every iteration shrinks all O brackets by the golden ratio (two error evaluations per
    kernel; the reusable interior point is recomputed rather than cached, to stay vectorised).
    The better of the final bracket midpoint and the min-max scale is returned, so the result is
    never worse than min-max scaling.
    """
    w = np.asarray(w, np.float64)
    s_max = minmax_scales(w, bits)
    a, b = 0.05 * s_max, s_max.copy()
    for _ in range(iters):
        c = b - _GOLDEN * (b - a)
        d = a + _GOLDEN * (b - a)
        left = kernel_sq_error(w, c, bits) < kernel_sq_error(w, d, bits)
        b = np.where(left, d, b)  # minimum bracketed in [a, d]
        a = np.where(left, a, c)  # minimum bracketed in [c, b]
    s = 0.5 * (a + b)
    keep_minmax = kernel_sq_error(w, s_max, bits) <= kernel_sq_error(w, s, bits)
    return np.where(keep_minmax, s_max, s)


def alternating_scales(w: np.ndarray, bits: int = 4, iters: int = 20, n_starts: int = 8) -> np.ndarray:
    """Alternate ``q = clamp(round(w / s))`` and ``s = <w, q> / <q, q>`` from several starts.

    Each half-step is optimal for its variable, so the error never rises, but a single run from
    the min-max scale stops in a local minimum (about 15% above the optimum on Gaussian kernels).
    The run is therefore started from ``n_starts`` scales evenly spaced in ``[0.3, 1] * max|w| /
    qmax`` and the best end point per kernel is kept (within ~1% of ``exact_scales`` for K >= 64).
    Cost ``O(n_starts * iters * O * K)``. All-zero kernels keep scale 1.
    """
    w = np.asarray(w, np.float64)
    s_max = minmax_scales(w, bits)
    best_s, best_e = s_max, kernel_sq_error(w, s_max, bits)
    for frac in np.linspace(1.0, 0.3, n_starts):
        s = s_max * frac
        for _ in range(iters):
            q = quantize_to_int(w, s, bits).astype(np.float64)
            qq = (q * q).sum(axis=1)
            s_new = np.where(qq > 0, (w * q).sum(axis=1) / np.where(qq > 0, qq, 1.0), s)
            s_new = np.where(s_new > 0, s_new, s)
            if np.array_equal(s_new, s):
                break
            s = s_new
        e = kernel_sq_error(w, s, bits)
        better = e < best_e
        best_s, best_e = np.where(better, s, best_s), np.where(better, e, best_e)
    return best_s


def exact_scales(w: np.ndarray, bits: int = 4) -> np.ndarray:
    """Globally optimal per-kernel scales (exact MMSE), by enumerating the rounding patterns.

    As s decreases from infinity, ``q(w_k / s)`` changes only where ``|w_k| / s`` crosses a
    rounding threshold ``j + 1/2``; between consecutive thresholds the pattern q is constant and
    the best scale for it is ``<w, q> / <q, q>``. The optimum ``(s*, q*)`` has ``q* = q(w / s*)``,
    so it is among these ``K * 2^(bits-1) + 1`` patterns. Cost ``O(K^2 * 2^bits)`` per kernel,
    vectorised over kernels in chunks.
    """
    w = np.asarray(w, np.float64)
    lo, hi = int_range(bits)
    n_out, k = w.shape
    halves = np.arange(max(-lo, hi)) + 0.5  # thresholds j + 1/2; the negative side reaches -lo
    best_s = minmax_scales(w, bits)
    n_pat = k * halves.size + 1
    chunk = max(1, 8_000_000 // (n_pat * k))
    for start in range(0, n_out, chunk):
        rows = w[start : start + chunk]
        br = np.sort((np.abs(rows)[:, :, None] / halves).reshape(rows.shape[0], -1), axis=1)
        big = br[:, -1:]
        big = np.where(big > 0, big, 1.0)
        # one s inside every interval between breakpoints, plus one beyond the largest;
        # repeated or zero breakpoints give empty intervals whose midpoint repeats a neighbour
        mids = np.concatenate([0.5 * (br[:, :-1] + br[:, 1:]), 2.0 * big], axis=1)
        mids = np.where(mids > 0, mids, big)
        q = np.clip(np.rint(rows[:, None, :] / mids[:, :, None]), lo, hi)  # [R, P, K]
        qq = (q * q).sum(axis=2)
        s = np.einsum("rpk,rk->rp", q, rows) / np.where(qq > 0, qq, 1.0)
        e = ((rows[:, None, :] - s[:, :, None] * q) ** 2).sum(axis=2)
        e = np.where((qq > 0) & (s > 0), e, np.inf)
        j = np.argmin(e, axis=1)
        r = np.arange(rows.shape[0])
        found = np.isfinite(e[r, j])
        best_s[start : start + chunk] = np.where(found, s[r, j], best_s[start : start + chunk])
    return best_s
