"""D1: one outlier in the calibration data must not set a tensor's range, and quantize warns
(naming the tensor and the sample) when calibration statistics look wrong."""

import warnings

import numpy as np
import pytest

from graphs import tiny_resnet
from q4sdk.ir.oracle import dequantize_output, quantize_input, run_oracle
from q4sdk.ptq.activations import activation_params
from q4sdk.ptq.calib_check import CalibrationWarning, check_tensor
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe


def _smooth_images(n, c=3, hw=8, seed=0):
    """Images whose neighbouring pixels are alike (cumulative sums of noise), NCHW."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, hw)).cumsum(axis=2).cumsum(axis=3)
    return (x / x.std()).astype(np.float32)


def test_range_search_clips_far_more_than_99_percent_of_an_outlier_extent():
    x = np.abs(np.random.default_rng(0).standard_normal(200_000)).astype(np.float32)
    clean = activation_params(x, 8, True)
    x[123] = 1e5  # one value; the old grid could not clip below 1 % of it (scale >= 1e3 / 255)
    bad = activation_params(x, 8, True)
    assert bad[0] == pytest.approx(clean[0], rel=0.05) and bad[1] == clean[1]


def test_one_outlier_pixel_neither_sets_the_input_scale_nor_goes_unnoticed():
    g = tiny_resnet(seed=1)
    x = _smooth_images(300, seed=1)
    clean = quantize_graph(g, x[:200], Recipe())
    bad_calib = x[:200].copy()
    bad_calib[1, 0, 0, 0] = 1e5  # the review's reproducer: one value out of 38,400
    with pytest.warns(CalibrationWarning, match=r"tensor 'x' has an outlier 100000 in sample 1"):
        bad = quantize_graph(g, bad_calib, Recipe())
    assert bad.input_tensor.scale == pytest.approx(clean.input_tensor.scale, rel=0.05)
    y_clean = dequantize_output(clean, run_oracle(clean, quantize_input(clean, x[200:])))
    y_bad = dequantize_output(bad, run_oracle(bad, quantize_input(bad, x[200:])))
    assert (y_bad.argmax(1) == y_clean.argmax(1)).mean() > 0.9


def test_clean_data_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        quantize_graph(tiny_resnet(seed=1), _smooth_images(64, seed=2), Recipe())


def test_constant_and_all_zero_tensors_are_named():
    assert "tensor 'a' is all zero over all 4 samples" in check_tensor("a", np.zeros((4, 3)))[0]
    assert "tensor 'b' is constant (2)" in check_tensor("b", np.full((4, 3), 2.0))[0]


def test_channels_last_samples_reshaped_as_channels_first_are_flagged():
    nchw = _smooth_images(32, seed=3)
    assert not any("channels-last" in m for m in check_tensor("x", nchw, is_input=True))
    reshaped = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1)).reshape(nchw.shape)  # NHWC bytes read as NCHW
    msgs = check_tensor("x", reshaped, is_input=True)
    assert any("input 'x' looks like channels-last samples reshaped" in m for m in msgs)
