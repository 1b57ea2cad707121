"""AdaRound: learned up/down rounding of a layer's weights (Nagel et al. 2020).

Each weight may go to ``floor(w / s)`` or ``floor(w / s) + 1``; the choice is relaxed to a
continuous ``h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1)`` (rectified sigmoid,
zeta = 1.1, gamma = -0.1) and learned with Adam by minimising

    L(V) = 1/N ||X W^T - Xq W_soft^T||_F^2 + reg * sum(1 - |2 h(V) - 1|^beta)
    W_soft = s * clamp(floor(W / s) + h(V), qmin, qmax)

The regulariser pushes every h to 0 or 1; it is off for the first ``warmup`` fraction of the
iterations and its exponent beta is annealed from ``beta[0]`` to ``beta[1]`` afterwards. The
result rounds ``h >= 0.5`` up. V starts where ``h(V)`` equals the fractional part of w / s, i.e.
at round-to-nearest's soft equivalent.

The reconstruction term is evaluated exactly on the full batch through the Gram matrices
``G = Xq^T Xq [K, K]`` and ``C = Xq^T X W^T [K, O]`` (``||Y - Xq A^T||^2 = ||Y||^2 - 2 <A, C^T> +
<A G, A>``), so an iteration costs ``O(O K^2)`` whatever N is. The loop runs on one torch thread:
its many small kernels gain nothing from threads, and on a loaded machine every op then waits
for a descheduled worker (measured 30-50x slower on 2 busy cores). The reconstruction
term runs in float32 (the matrix products dominate); V, h and the regulariser stay in float64,
where float32 would hit denormals in the regulariser's gradient and run slower.
"""

from __future__ import annotations

import numpy as np
import torch

from q4sdk.ptq.threads import torch_threads
from q4sdk.ptq.weights import int_range

ZETA, GAMMA = 1.1, -0.1


def _rect_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def adaround(
    w: np.ndarray,
    x: np.ndarray,
    scales: np.ndarray,
    bits: int = 4,
    iters: int = 1000,
    reg: float = 0.01,
    beta: tuple[float, float] = (20.0, 2.0),
    xq: np.ndarray | None = None,
    lr: float = 1e-2,
    warmup: float = 0.2,
) -> np.ndarray:
    """Learn the rounding of ``W [O, K]`` for inputs ``X [N, K]`` (``Xq`` = quantized-path inputs,
    default X) and per-kernel ``scales [O]``; returns int8 ``[O, K]`` in the signed ``bits`` range.
    """
    lo, hi = int_range(bits)
    w_t = torch.as_tensor(np.asarray(w, np.float64))
    x_t = torch.as_tensor(np.asarray(x, np.float64))
    xq_t = x_t if xq is None else torch.as_tensor(np.asarray(xq, np.float64))
    s = torch.as_tensor(np.asarray(scales, np.float64))[:, None]
    if xq_t.shape != x_t.shape or x_t.shape[1] != w_t.shape[1] or s.shape[0] != w_t.shape[0]:
        raise ValueError(
            f"adaround: shapes W {tuple(w_t.shape)}, X {tuple(x_t.shape)}, "
            f"Xq {tuple(xq_t.shape)}, scales {tuple(s.shape[:1])} do not agree"
        )
    n = x_t.shape[0]
    gram = (xq_t.T @ xq_t / n).float()  # [K, K]
    cross_t = (xq_t.T @ (x_t @ w_t.T) / n).T.float()  # [O, K]
    w_floor = torch.floor(w_t / s)
    frac = (w_t / s - w_floor).clamp(1e-4, 1 - 1e-4)
    v = (-torch.log((ZETA - GAMMA) / (frac - GAMMA) - 1.0)).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    n_warm = int(warmup * iters)
    with torch_threads(1), torch.enable_grad():  # callers may run under no_grad
        for it in range(iters):
            h = _rect_sigmoid(v)
            a = (s * torch.clamp(w_floor + h, lo, hi)).float()  # soft-quantized weights [O, K]
            loss = (((a @ gram) * a).sum() - 2.0 * (a * cross_t).sum()).double()
            if it >= n_warm:
                progress = (it - n_warm) / max(1, iters - n_warm)
                b = beta[0] + (beta[1] - beta[0]) * progress
                loss = loss + reg * (1.0 - (2.0 * h - 1.0).abs().pow(b)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        up = (_rect_sigmoid(v) >= 0.5).to(w_floor.dtype)
    return torch.clamp(w_floor + up, lo, hi).numpy().astype(np.int8)
