"""Registries of the recipe's methods: name -> function.

``Recipe.validate`` and the command line's choices come from these keys, and the pipeline calls
the functions through them, so a new method is one function and one entry here.

* ``WEIGHT_SCALE[name](w, bits, recipe) -> scales``: per-kernel scales ``[O]`` (float64) of a
  layer's weights ``w [O, K]``.
* ``WEIGHT_ROUNDING[name](w, scales, bits, rows, recipe) -> q``: the integer weights ``[O, K]``;
  ``rows()`` returns the sampled float-path and quantized-path layer inputs ``(X, Xq)`` as
  im2col rows ``[R, K]`` (only data-driven roundings call it).
* ``ACTIVATION_RANGE[name](x, bits, unsigned, recipe) -> (scale, zero_point)`` of a tensor's
  calibration values ``x``.

The implementations are imported when first called, so that reading the keys (the CLI's choices)
costs no torch import.
"""

from __future__ import annotations

import numpy as np


def _mmse_scales(w, bits, recipe):
    from q4sdk.ptq.weights import mmse_scales_grid

    return mmse_scales_grid(w, bits, recipe.weight_grid)


def _minmax_scales(w, bits, recipe):
    from q4sdk.ptq.weights import minmax_scales

    return minmax_scales(w, bits)


def _golden_scales(w, bits, recipe):
    from q4sdk.ptq.scale_search import golden_section_scales

    return golden_section_scales(w, bits)


def _alternating_scales(w, bits, recipe):
    from q4sdk.ptq.scale_search import alternating_scales

    return alternating_scales(w, bits)


WEIGHT_SCALE = {
    "mmse": _mmse_scales,  # exact line search over recipe.weight_grid points
    "minmax": _minmax_scales,
    "golden": _golden_scales,  # golden-section search (baseline)
    "alternating": _alternating_scales,  # alternating (s, q) least squares (baseline)
}


def _nearest(w, scales, bits, rows, recipe):
    from q4sdk.ptq.weights import quantize_to_int

    return quantize_to_int(w, scales, bits)


def _adaround(w, scales, bits, rows, recipe):
    import torch

    from q4sdk.ptq.adaround import adaround

    x, xq = rows()
    with torch.enable_grad():  # the calibration loop runs under no_grad
        return adaround(w, x, scales, bits, iters=recipe.adaround_iters, xq=xq)


def _gpfq(w, scales, bits, rows, recipe):
    from q4sdk.ptq.gpfq import gpfq_quantize

    x, xq = rows()
    return gpfq_quantize(w, x, xq, scales, bits, recipe.gpfq_sparsity)


WEIGHT_ROUNDING = {
    "nearest": _nearest,
    "adaround": _adaround,  # learned up/down rounding (Nagel et al. 2020)
    "gpfq": _gpfq,  # greedy path-following (Zhang, Zhou & Saab 2022)
}


def _activation_range(method: str):
    def fn(x: np.ndarray, bits: int, unsigned: bool, recipe) -> tuple[float, int]:
        from q4sdk.ptq.activations import activation_params

        return activation_params(x, bits, unsigned, method, recipe.activation_grid)

    fn.__name__ = f"activation_range_{method}"
    return fn


ACTIVATION_RANGE = {
    name: _activation_range(name) for name in ("mmse", "minmax", "aciq_laplace", "aciq_gauss")
}
