"""GPFQ: greedy path-following quantization of a layer (Zhang, Zhou & Saab 2022).

The weights of all kernels are quantized one input coordinate at a time, t = 1..K. For each
kernel a running error ``u in R^N`` holds what the layer's output has lost so far,
``u_t = sum_{j<=t} (w_j X_j - s q_j Xq_j)``, where ``X_j`` is column j of the float-path inputs
and ``Xq_j`` that of the quantized-path inputs. Coordinate t picks the grid point that best
cancels the error carried so far plus its own contribution:

    q_t = clamp(round(<Xq_t, u_{t-1} + w_t X_t> / (s ||Xq_t||^2)), qmin, qmax)

so earlier rounding errors are compensated by later weights. The sparsity-promoting variant
soft-thresholds the inner product ``z = <Xq_t, u_{t-1} + w_t X_t>`` before dividing:
``z <- sign(z) max(|z| - lambda, 0)``; lambda is in the units of z (input^2 * weight), so weights
whose contribution to the output is small become exact zeros.

Implementation: u is never formed. With the Gram matrices ``G = Xq^T X`` and ``H = Xq^T Xq``
(both [K, K], one BLAS call each), ``<Xq_t, u_{t-1} + w_t X_t> = sum_{j<=t} G[t, j] w_j -
s sum_{j<t} H[t, j] q_j``; the first sum for all t is one matrix product with the lower triangle
of G. Cost ``O(N K^2)`` once plus ``O(O K^2 / 2)`` for the sweep, memory ``O(K^2)``; exactly the
same arithmetic as the running-error form, up to floating-point rounding.
"""

from __future__ import annotations

import numpy as np

from q4sdk.ptq.weights import int_range


def gpfq_quantize(
    w: np.ndarray,
    x: np.ndarray,
    xq: np.ndarray,
    scales: np.ndarray,
    bits: int = 4,
    sparsity_lambda: float = 0.0,
) -> np.ndarray:
    """Quantize ``W [O, K]`` given float inputs ``X [N, K]``, quantized-path inputs ``Xq [N, K]``
    and per-kernel ``scales [O]``; returns int8 ``[O, K]`` in the signed ``bits`` range.

    Minimises greedily ``||X W^T - Xq (s * Q)^T||`` column by column. Input columns of Xq that
    are identically zero carry no information: their weights are rounded to nearest.
    """
    lo, hi = int_range(bits)
    w = np.asarray(w, np.float64)
    x = np.asarray(x, np.float64)
    xq = np.asarray(xq, np.float64)
    s = np.asarray(scales, np.float64)
    if x.shape != xq.shape or x.ndim != 2 or x.shape[1] != w.shape[1] or s.shape != (w.shape[0],):
        raise ValueError(
            f"gpfq_quantize: shapes W {w.shape}, X {x.shape}, Xq {xq.shape}, scales {s.shape} do not agree"
        )
    k = w.shape[1]
    g = xq.T @ x  # G[t, j] = <Xq_t, X_j>
    h = xq.T @ xq  # H[t, j] = <Xq_t, Xq_j>
    float_part = w @ np.tril(g).T  # [O, K]: sum_{j<=t} G[t, j] w_j
    q = np.zeros(w.shape, np.float64)
    for t in range(k):
        if h[t, t] > 0:
            z = float_part[:, t] - s * (q[:, :t] @ h[t, :t])
            if sparsity_lambda > 0:
                z = np.sign(z) * np.maximum(np.abs(z) - sparsity_lambda, 0.0)
            q[:, t] = np.clip(np.rint(z / (h[t, t] * s)), lo, hi)
        else:
            q[:, t] = np.clip(np.rint(w[:, t] / s), lo, hi)
    return q.astype(np.int8)
