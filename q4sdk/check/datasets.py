"""Loading calibration / test data files (.npy or .npz)."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error


@dataclass
class Samples:
    x: np.ndarray            # float32 [N, *input_shape] in the model's input layout
    y: np.ndarray | None     # int64 [N] labels, when the file has them
    path: Path


def load_samples(path: str | Path, input_shape: tuple[int, ...] | None = None, nhwc: bool = False,
                 limit: int | None = None, start: int = 0) -> Samples:
    """Read ``x`` (and ``y`` if present) from ``.npz``, or ``x`` from ``.npy``.

    Integer arrays are cast to float32 unchanged. With ``nhwc`` a rank-4 array in channels-last
    layout is transposed to the model's NCHW input layout.
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
    if x.dtype.kind not in "biuf":
        raise Q4Error(f"{p}: field 'x' has non-numeric dtype {x.dtype}")
    stop = None if limit is None else start + limit
    x = x[start:stop]
    if y is not None:
        y = y[start:stop]
        if y.shape != (len(x),):
            raise Q4Error(f"{p}: field 'y' has shape {y.shape}, expected ({len(x)},)")
        y = y.astype(np.int64)
    if len(x) == 0:
        raise Q4Error(f"{p}: field 'x' has no samples in the selected range")
    x = x.astype(np.float32)
    if nhwc:
        if x.ndim != 4:
            raise Q4Error(f"{p}: --nhwc needs a rank-4 'x', got shape {x.shape}")
        x = x.transpose(0, 3, 1, 2)
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        hint = " (channels-last data? pass --nhwc)" if (x.ndim == 4 and not nhwc and
                                                         x.shape[3] == input_shape[0]) else ""
        raise Q4Error(f"{p}: field 'x' has sample shape {tuple(x.shape[1:])}, the model expects "
                      f"{tuple(input_shape)}{hint}")
    return Samples(np.ascontiguousarray(x), y, p)
