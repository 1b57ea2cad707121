"""Bias correction: remove the mean output shift that weight quantization causes.

Quantizing ``W`` to ``W_hat`` shifts the expected output of a layer by ``(W_hat - W) E[x]``
(Nagel et al. 2019, data-free quantization; Finkelstein et al. 2019). Adding
``delta = E[y_float] - E[y_quant]`` to the bias cancels that shift. Two estimates:

* empirical: from per-channel output means measured on calibration data through the float and
  the quantized layer (captures activation quantization and clipping too);
* analytical: ``delta = (W - W_hat) @ E[x]`` from the layer's input mean alone (weight error only;
  for a convolution pass the im2col column means, i.e. the per-channel input means repeated over
  the kernel taps in the caller's im2col order; zero-padded taps make it approximate at borders).

The pipeline runs the empirical form as a layer step (``correct_layer_bias``), on the layer's
pre-activation outputs over the whole calibration set.
"""

from __future__ import annotations

import numpy as np
import torch


def correct_layer_bias(layer) -> None:
    """Layer step: add ``E[y_float] - E[y_quant]`` per output channel to the layer's bias and to
    its simulated quantized output (``layer``: a ``pipeline.LayerPass``)."""
    pre_q = layer.q_pre
    dims = [0, 2, 3] if pre_q.dim() == 4 else [0]
    delta = (layer.fp_pre - pre_q).mean(dim=dims).double().numpy()
    layer.lw.bias = layer.lw.bias + delta
    layer.q_pre = pre_q + torch.as_tensor(delta, dtype=torch.float32).reshape(
        (1, -1) + (1,) * (pre_q.dim() - 2)
    )
    layer.lw.stats["bias_correction_abs_mean"] = float(np.abs(delta).mean())


def empirical_bias_correction(y_float_mean: np.ndarray, y_quant_mean: np.ndarray) -> np.ndarray:
    """``delta [O] = E[y_float] - E[y_quant]``, to be added to the layer's bias."""
    yf, yq = np.asarray(y_float_mean, np.float64), np.asarray(y_quant_mean, np.float64)
    if yf.shape != yq.shape or yf.ndim != 1:
        raise ValueError(
            f"empirical_bias_correction: means of shapes {yf.shape} and {yq.shape}, "
            "expected two equal [O] vectors"
        )
    return yf - yq


def analytical_weight_bias_correction(w: np.ndarray, w_hat: np.ndarray, x_mean: np.ndarray) -> np.ndarray:
    """``delta [O] = (W - W_hat) @ E[x]`` for ``W, W_hat [O, K]`` and ``x_mean [K]``."""
    w, w_hat = np.asarray(w, np.float64), np.asarray(w_hat, np.float64)
    x_mean = np.asarray(x_mean, np.float64)
    if w.shape != w_hat.shape or w.ndim != 2 or x_mean.shape != (w.shape[1],):
        raise ValueError(
            f"analytical_weight_bias_correction: W {w.shape}, W_hat {w_hat.shape}, "
            f"x_mean {x_mean.shape} do not agree"
        )
    return (w - w_hat) @ x_mean
