"""Dual INT4 weight tensors: ``W ~ a1 * T1 + a2 * T2`` per kernel (Choukroun et al. 2019).

A kernel that one 4-bit tensor represents poorly is written as the sum of two scaled 4-bit
tensors (the paper's "multiple tensors" approximation, its Algorithm 1 for two terms). The
runtime computes two integer convolutions and adds them with their own scales.

``method="alternating"`` (any K): the MMSE single-tensor solution gives ``(a1, T1)``, the MMSE
solution of the residual ``W - a1 T1`` gives ``(a2, T2)``; then repeat ``iters`` times:
least squares for ``(a1, a2)`` given ``(T1, T2)``, re-round ``T1`` given the rest, re-round ``T2``
given the rest. Every step is optimal for the variables it changes, so the error never rises.
The same is run from the min-max (unclipped) ``a1`` and the better result kept per kernel: the
MMSE start clips outliers whose large residual the second tensor then cannot cover, so for large
K the unclipped start wins by ~7x in MSE.

``method="exact"`` (K <= ``EXACT_MAX_K``): a search over the first tensor, not a certified global
optimum. Candidates for ``T1`` are *all* rounding patterns ``clamp(round(w / s))`` over every
``s > 0`` (``K * 2^(bits-1) + 1`` of them, enumerated exactly from the rounding breakpoints, i.e. a
complete line search over the first tensor's scale). For each candidate ``T1`` and each of
``N_A1`` values of ``a1`` around its least-squares value, the residual is quantized with the exact
single-tensor optimum (``scale_search.exact_scales``), then ``(a1, a2)`` is refitted. The best
candidate is polished by the alternating steps, and the alternating solution itself is a
candidate, so ``exact`` is never worse than ``alternating``. Cost about
``O(N_A1 * K^3 * 2^(2 bits - 2))`` per kernel (~10^6 flops for 3x3 kernels).
"""

from __future__ import annotations

import numpy as np

from q4sdk.ptq.scale_search import alternating_scales, exact_scales
from q4sdk.ptq.weights import int_range, minmax_scales, quantize_to_int

EXACT_MAX_K = 12
N_A1 = 9


def layer_mse(w: np.ndarray, w_hat: np.ndarray) -> float:
    """Mean squared error between a weight tensor and its approximation (any equal shapes)."""
    d = np.asarray(w, np.float64) - np.asarray(w_hat, np.float64)
    return float(np.mean(d * d))


def dual_reconstruct(t1: np.ndarray, a1: np.ndarray, t2: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """``a1 * T1 + a2 * T2`` per kernel: [O, K] float64."""
    return a1[:, None] * t1.astype(np.float64) + a2[:, None] * t2.astype(np.float64)


def dual_decompose(
    w: np.ndarray, bits: int = 4, iters: int = 10, method: str = "alternating"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Approximate every kernel of ``W [O, K]`` by ``a1 * T1 + a2 * T2``.

    Returns ``(T1 int8 [O, K], a1 float64 [O], T2 int8 [O, K], a2 float64 [O])`` with T1, T2 in
    the signed ``bits`` range. Raises ValueError for an unknown method or, for ``"exact"``,
    K > EXACT_MAX_K.
    """
    w = np.asarray(w, np.float64)
    if method == "alternating":
        return _alternating(w, bits, iters)
    if method == "exact":
        if w.shape[1] > EXACT_MAX_K:
            raise ValueError(
                f"dual_decompose(method='exact') supports K <= {EXACT_MAX_K}, "
                f"got K = {w.shape[1]}; use method='alternating'"
            )
        return _exact(w, bits, iters)
    raise ValueError(f"dual_decompose: unknown method {method!r} (use 'alternating' or 'exact')")


def _fit_pair(w, t1, t2, a1, a2):
    """Least-squares (a1, a2) per kernel for fixed T1, T2; keeps the old values when singular."""
    t1, t2 = t1.astype(np.float64), t2.astype(np.float64)
    g11, g22, g12 = (t1 * t1).sum(1), (t2 * t2).sum(1), (t1 * t2).sum(1)
    r1, r2 = (t1 * w).sum(1), (t2 * w).sum(1)
    det = g11 * g22 - g12 * g12
    ok = det > 1e-12 * np.maximum(g11 * g22, 1e-300)
    safe = np.where(ok, det, 1.0)
    return (np.where(ok, (g22 * r1 - g12 * r2) / safe, a1), np.where(ok, (g11 * r2 - g12 * r1) / safe, a2))


def _reround(target, a, bits):
    """Best integers t (per element) for ``target ~ a * t``; zeros where a == 0."""
    lo, hi = int_range(bits)
    safe = np.where(a != 0, a, 1.0)[:, None]
    t = np.clip(np.rint(target / safe), lo, hi)
    return np.where(a[:, None] != 0, t, 0).astype(np.int8)


def _err(w, t1, a1, t2, a2):
    return ((w - dual_reconstruct(t1, a1, t2, a2)) ** 2).sum(axis=1)


def _polish(w, t1, a1, t2, a2, bits, iters):
    """Alternating refinement; returns the best iterate per kernel (error is non-increasing)."""
    best = (t1, a1, t2, a2)
    best_e = _err(w, *best)
    for _ in range(iters):
        a1, a2 = _fit_pair(w, t1, t2, a1, a2)
        t1 = _reround(w - a2[:, None] * t2, a1, bits)
        t2 = _reround(w - a1[:, None] * t1, a2, bits)
        e = _err(w, t1, a1, t2, a2)
        better = e < best_e
        best = (
            np.where(better[:, None], t1, best[0]),
            np.where(better, a1, best[1]),
            np.where(better[:, None], t2, best[2]),
            np.where(better, a2, best[3]),
        )
        best_e = np.where(better, e, best_e)
    return best


def _alternating(w, bits, iters):
    best, best_e = None, None
    for a1 in (alternating_scales(w, bits), minmax_scales(w, bits)):
        t1 = quantize_to_int(w, a1, bits)
        r = w - a1[:, None] * t1
        a2 = alternating_scales(r, bits)
        cand = _polish(w, t1, a1, quantize_to_int(r, a2, bits), a2, bits, iters)
        best, best_e = _keep_better(w, cand, best, best_e)
    return best


def _keep_better(w, cand, best, best_e):
    """Per kernel, the better of two (T1, a1, T2, a2) solutions, and its error."""
    ce = _err(w, *cand)
    if best is None:
        return cand, ce
    better = ce < best_e
    merged = tuple(np.where(better.reshape((-1,) + (1,) * (c.ndim - 1)), c, b) for c, b in zip(cand, best))
    return merged, np.where(better, ce, best_e)


def _line_patterns(w, bits):
    """All patterns clamp(round(w / s)) over s > 0: [O, P, K] float64 (P = K * 2^(bits-1) + 1)."""
    lo, hi = int_range(bits)
    halves = np.arange(max(-lo, hi)) + 0.5
    br = np.sort((np.abs(w)[:, :, None] / halves).reshape(w.shape[0], -1), axis=1)
    big = np.where(br[:, -1:] > 0, br[:, -1:], 1.0)
    mids = np.concatenate([0.5 * (br[:, :-1] + br[:, 1:]), 2.0 * big], axis=1)
    mids = np.where(mids > 0, mids, big)
    return np.clip(np.rint(w[:, None, :] / mids[:, :, None]), lo, hi)


def _exact(w, bits, iters):
    n_out, k = w.shape
    best = _alternating(w, bits, iters)
    best_e = _err(w, *best)
    t1 = _line_patterns(w, bits)  # [O, P, K]
    n_pat = t1.shape[1]
    tt = (t1 * t1).sum(axis=2)
    a1_ls = (np.einsum("opk,ok->op", t1, w) / np.where(tt > 0, tt, 1.0)).reshape(-1)  # [O*P]
    t1 = t1.reshape(n_out * n_pat, k)  # one row per (kernel, pattern)
    w_rep = np.repeat(w, n_pat, axis=0)
    for m in np.linspace(0.8, 1.2, N_A1):
        a1 = a1_ls * m
        resid = w_rep - a1[:, None] * t1
        a2 = exact_scales(resid, bits)
        t2 = quantize_to_int(resid, a2, bits)
        a1f, a2f = _fit_pair(w_rep, t1, t2, a1, a2)
        j = np.argmin(_err(w_rep, t1, a1f, t2, a2f).reshape(n_out, n_pat), axis=1)
        rows = np.arange(n_out) * n_pat + j
        cand = (t1[rows].astype(np.int8), a1f[rows], t2[rows], a2f[rows])
        best, best_e = _keep_better(w, _polish(w, *cand, bits, iters), best, best_e)
    return best
