"""INT4 packing: two signed 4-bit values per byte, the element with the lower index in the low nibble.

Rows (one per output channel) are padded with a zero nibble to a whole number of bytes, so every row
starts on a byte boundary: a ``[rows, k]`` tensor packs to ``[rows, ceil(k / 2)]`` bytes.
"""

from __future__ import annotations

import numpy as np


def pack_int4_rows(values: np.ndarray) -> np.ndarray:
    """Pack int values in [-8, 7], shape [rows, k] (or [k]), into uint8 [rows, ceil(k/2)]."""
    v = np.asarray(values)
    if v.ndim == 1:
        return pack_int4_rows(v[None, :])[0]
    v = v.reshape(v.shape[0], -1).astype(np.int64)
    if v.size and (v.min() < -8 or v.max() > 7):
        raise ValueError("int4 values must lie in [-8, 7]")
    rows, k = v.shape
    if k % 2:
        v = np.concatenate([v, np.zeros((rows, 1), np.int64)], axis=1)
    nib = (v & 0xF).astype(np.uint8)
    return (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8)


def unpack_int4_rows(packed: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`pack_int4_rows`: uint8 [rows, ceil(k/2)] -> int8 [rows, k]."""
    p = np.asarray(packed, dtype=np.uint8)
    if p.ndim == 1:
        return unpack_int4_rows(p[None, :], k)[0]
    lo = (p & 0xF).astype(np.int8)
    hi = (p >> 4).astype(np.int8)
    out = np.empty((p.shape[0], p.shape[1] * 2), np.int8)
    out[:, 0::2] = lo
    out[:, 1::2] = hi
    out = np.where(out >= 8, out - 16, out).astype(np.int8)
    return out[:, :k]
