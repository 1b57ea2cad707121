"""Loading calibration / test data files (.npy or .npz)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error

FLOAT32_EXACT = 1 << 24  # float32 holds every integer up to this magnitude


@dataclass
class Samples:
    x: np.ndarray  # float32 [N, *input_shape] in the model's input layout
    y: np.ndarray | None  # int64 [N] labels, when the file has them
    path: Path


def load_samples(
    path: str | Path,
    input_shape: tuple[int, ...] | None = None,
    nhwc: bool = False,
    limit: int | None = None,
    start: int = 0,
) -> Samples:
    """Read ``x`` (and ``y`` if present) from ``.npz``, or ``x`` from ``.npy``.

    Integer arrays are cast to float32 unchanged. With ``nhwc`` a rank-4 array in channels-last
    layout is transposed to the model's NCHW input layout. ``limit`` (>= 1) samples are taken from
    index ``start`` (0 <= start < N). Refused with a one-line Q4Error naming the file and the
    array: an ``x`` without a sample axis, or of bool, complex, string or object dtype, integers
    beyond +-2^24 (float32 would round them) or floats beyond float32's range; labels ``y`` that
    are not a 1-D array of N integers (floats only when integral, e.g. 3.0).
    """
    p = Path(path)
    if not p.is_file():
        raise Q4Error(f"{p}: data file not found")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "x" not in z.files:
                    raise Q4Error(f"{p}: no array 'x' (found: {', '.join(z.files) or 'none'})")
                x = z["x"]
                y = z["y"] if "y" in z.files else None
        elif p.suffix == ".npy":
            x, y = np.load(p, allow_pickle=False), None
        else:
            raise Q4Error(f"{p}: expected a .npy or .npz file")
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise Q4Error(f"{p}: cannot read as numpy data ({e})") from None
    x = _check_x(x, p)
    if len(x) == 0:
        raise Q4Error(f"{p}: field 'x' has no samples")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise Q4Error(f"{p}: the sample count must be >= 1, got {limit}")
    if not isinstance(start, (int, np.integer)) or start < 0:
        raise Q4Error(f"{p}: the first sample index must be >= 0, got {start}")
    if start >= len(x):
        raise Q4Error(f"{p}: first sample {start} is past the end of 'x' ({len(x)} samples)")
    if y is not None:
        y = _check_y(y, len(x), p)
    stop = None if limit is None else start + limit
    x = x[start:stop]
    if y is not None:
        y = y[start:stop]
    if len(x) == 0:
        raise Q4Error(f"{p}: field 'x' has no samples in the selected range")
    x = x.astype(np.float32)
    if nhwc:
        if x.ndim != 4:
            raise Q4Error(f"{p}: --nhwc needs a rank-4 'x', got shape {x.shape}")
        x = x.transpose(0, 3, 1, 2)
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        hint = (
            " (channels-last data? pass --nhwc)"
            if (x.ndim == 4 and not nhwc and x.shape[3] == input_shape[0])
            else ""
        )
        raise Q4Error(
            f"{p}: field 'x' has sample shape {tuple(x.shape[1:])}, the model expects "
            f"{tuple(input_shape)}{hint}"
        )
    return Samples(np.ascontiguousarray(x), y, p)


def _check_x(x: np.ndarray, p: Path) -> np.ndarray:
    if x.dtype.kind not in "iuf":
        what = {"b": "boolean", "c": "complex", "U": "string", "S": "bytes", "O": "object"}.get(
            x.dtype.kind, "non-numeric"
        )
        raise Q4Error(f"{p}: field 'x' has {what} dtype {x.dtype}; expected integer or float samples")
    if x.ndim == 0:
        raise Q4Error(f"{p}: field 'x' is a single value (0-d); expected [N, ...] samples")
    if x.size and x.dtype.kind in "iu" and x.dtype.itemsize > 2:
        lo, hi = int(x.min()), int(x.max())
        if max(-lo, hi) > FLOAT32_EXACT:
            raise Q4Error(
                f"{p}: field 'x' holds integers up to {max(-lo, hi):,}; beyond +-2^24 float32 "
                f"rounds them (scale the data to its real range)"
            )
    if x.size and x.dtype.kind == "f" and x.dtype.itemsize > 4:
        big = np.abs(x[np.isfinite(x)]).max(initial=0)
        if big > np.finfo(np.float32).max:
            raise Q4Error(f"{p}: field 'x' holds {big:.3g}, beyond the float32 range")
    return x


def _check_y(y: np.ndarray, n: int, p: Path) -> np.ndarray:
    if y.dtype.kind not in "iuf":
        raise Q4Error(f"{p}: field 'y' has dtype {y.dtype}; expected integer class labels")
    if y.shape != (n,):
        raise Q4Error(f"{p}: field 'y' has shape {y.shape}, expected ({n},): one label per sample of 'x'")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y)) if y.size else np.zeros(0, bool)
        if bad.any():
            raise Q4Error(
                f"{p}: field 'y' holds the non-integer label {y[bad][0]!r} at index {int(np.argmax(bad))}"
            )
    if y.size and (y.min() < 0 or y.max() > np.iinfo(np.int32).max):
        raise Q4Error(
            f"{p}: field 'y' holds the label {int(y.min() if y.min() < 0 else y.max())}; "
            f"labels are class indices >= 0"
        )
    return y.astype(np.int64)
