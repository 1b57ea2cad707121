"""Warnings about calibration statistics that look wrong.

The quantizer picks every activation range from the calibration data, so bad data gives a bad
model without any error. ``check_tensor`` looks at one tensor's calibration values (sample axis
first) and returns one line per problem, naming the tensor and, where one sample is at fault, its
index:

* outliers: values more than ``activations.OUTLIER_FACTOR`` times beyond the bulk of the values
  (the range search clips them, but the data is probably broken);
* a constant (e.g. all-zero) tensor: nothing to calibrate on;
* for the network input, data that looks like channels-last samples reshaped (not transposed) to
  the model's channels-first layout: neighbouring pixels of a true image are alike, and here the
  values ``C`` apart in memory are far more alike than the ones side by side.

The pipeline issues them as ``CalibrationWarning`` (Python ``warnings``), which the command line
prints on stderr.
"""

from __future__ import annotations

import numpy as np

from q4sdk.ptq.activations import OUTLIER_FACTOR, bulk_range, search_range


class CalibrationWarning(UserWarning):
    """Calibration data that will probably give a poor model."""


def check_tensor(name: str, x: np.ndarray, is_input: bool = False) -> list[str]:
    x = np.asarray(x, np.float32)
    out = []
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        what = "all zero" if lo == 0 else f"constant ({lo:g})"
        return [
            f"calibration: tensor '{name}' is {what} over all {len(x)} samples; its quantization "
            "range is arbitrary (check the data, or the layer feeding it)"
        ]
    blo, bhi = bulk_range(x)
    slo, shi = search_range(lo, hi, blo, bhi)
    if slo > lo or shi < hi:
        per_sample = np.abs(x.reshape(len(x), -1)).max(axis=1)
        i = int(np.argmax(per_sample))
        worst = hi if shi < hi and (slo <= lo or hi >= -lo) else lo
        out.append(
            f"calibration: tensor '{name}' has an outlier {worst:g} in sample {i}, more than "
            f"{OUTLIER_FACTOR:g}x beyond the bulk of its values [{blo:g}, {bhi:g}]; it is clipped "
            "(check the data)"
        )
    if is_input and x.ndim == 4 and x.shape[1] > 1 and x.shape[3] >= 4 and _looks_reshaped(x):
        out.append(
            f"calibration: input '{name}' looks like channels-last samples reshaped to "
            f"{tuple(x.shape[1:])} (values {x.shape[1]} apart in memory are more alike than "
            "neighbouring pixels); transpose the data (or pass --nhwc) instead"
        )
    return out


def _looks_reshaped(x: np.ndarray) -> bool:
    """Whether the values ``C`` apart in each sample's memory are much more alike than horizontal
    neighbours (what channels-last images read as channels-first look like)."""
    sub = x[:64]
    c = sub.shape[1]
    flat = sub.reshape(len(sub), -1)
    along_w = np.abs(np.diff(sub, axis=3)).mean()
    stride_c = np.abs(flat[:, c:] - flat[:, :-c]).mean()
    return bool(stride_c < 0.5 * along_w)
