"""The optimised maxpool, lut and mul kernels (``_dsp``, ``_a4_dsp``, ``_mve``) on their boards,
bit for bit against the oracle.

Random cases -- maxpool and avgpool windows of CNN stems (3x3 stride 2, 2x2, asymmetric and ceil-mode pads,
1-D, count_pads divisors, windows of 256 taps and more), channel counts with every tail (C % 4,
C % 8, C % 16), constant inputs at -128 / 127 against the opposite zero point (padding could only
win by mistake; the int16 lane sums reach their bounds), every avgpool shift class; lut tables at 8, 4 and 2 input bits with sizes that leave tails and below
the pair table's threshold; mul element-wise and squeeze-excite broadcast ([N, C, 1, 1]) with
every shift class the variants branch on (below 32, 32, 33..54, above 54, m = 0), the extreme
products +-255 * 255 at the largest multiplier, clamped and single-value ranges -- are computed by
``q4sdk.ir.oracle`` (maxpool, avgpool, lut, mul, concat), written into one harness firmware per board
(``tests/mcu/elem_harness.c``) and run under QEMU on ``mps2-an386`` (Cortex-M4: portable, _dsp,
_a4_dsp) and ``mps3-an547`` (Cortex-M55: also _mve): every output byte must match, and nothing may
be written past the output or past the scratch a variant asked for. Also built at -O0, and
warning-free on each core and the host.

Tests skip when the Arm toolchain or QEMU is missing, and fail instead when CI is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcu.harness import CORES, STRICT_FLAGS, c_array, require_tools, run_harness, runs_per_board  # noqa: E402
from q4sdk.codegen.kernels import KERNEL_VARIANTS  # noqa: E402
from q4sdk.ir import oracle  # noqa: E402
from q4sdk.ir.fixedpoint import quantize_multiplier  # noqa: E402
from q4sdk.ir.qmodel import QOp, QTensor  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime_c"
HARNESS = ROOT / "tests" / "mcu" / "elem_harness.c"
KINDS = {
    "maxpool": ("pooling", "q4_maxpool_s8"),
    "avgpool": ("pooling", "q4_avgpool_s8"),
    "lut": ("activation", "q4_lut_s8"),
    "mul": ("basic", "q4_mul_s8"),
    "concat": ("basic", "q4_concat_s8"),
}
PORTABLE = [RUNTIME / "src" / folder / f"{stem}.c" for folder, stem in KINDS.values()]
VARIANTS = [
    RUNTIME / "src" / folder / f"{stem}_{arch}.c"
    for folder, stem in KINDS.values()
    for arch in ("dsp", "mve")
]
BOARDS = ("mps2-an386", "mps3-an547")
BOARD_VARIANTS = {
    "mps2-an386": {
        "maxpool": {"portable", "dsp"},
        "avgpool": {"portable", "dsp"},
        "lut": {"portable", "dsp", "a4_dsp"},
        "mul": {"portable", "dsp"},
        "concat": {"portable", "dsp"},
    },
    "mps3-an547": {
        "maxpool": {"portable", "dsp", "mve"},
        "avgpool": {"portable", "dsp", "mve"},
        "lut": {"portable", "dsp", "a4_dsp", "mve"},
        "mul": {"portable", "dsp", "mve"},
        "concat": {"portable", "dsp", "mve"},
    },
}
LUT_PAIRS_BYTES = 512


@dataclass
class ElemCase:
    """One kernel call: its kind, inputs, parameters and the oracle's output."""

    name: str
    kind: str
    a: np.ndarray
    expected: np.ndarray
    b: np.ndarray | None = None
    parts: list | None = None  # concat: the inputs, [rows, channels_i] each
    table: np.ndarray | None = None
    params: dict = field(default_factory=dict)


def maxpool_case(rng, name, h, w, c, kernel, stride, pads, bits=8, fill=None) -> ElemCase:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = (
        np.full((h, w, c), fill, np.int8)
        if fill is not None
        else rng.integers(lo, hi + 1, (h, w, c)).astype(np.int8)
    )
    op = QOp(
        name, "maxpool", ["x"], "y", {"kernel": list(kernel), "stride": list(stride), "pads": list(pads)}
    )
    t = QTensor("x", (1, c, h, w), bits, 1.0, 0)
    y = oracle.maxpool(x[None], op, t, t)[0]
    return ElemCase(name, "maxpool", x, y, params={"kernel": kernel, "stride": stride, "pads": pads})


def avgpool_case(
    rng, name, h, w, c, kernel, stride, pads, count_pads=None, shift=None, bits=8, fill=None, zps=None
):
    """Multipliers for S_x / (S_y d) with d the divisor (one pair, or one per count with
    ``count_pads``); ``shift`` forces every entry to (2^31 - 1, shift)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = (
        np.full((h, w, c), fill, np.int8)
        if fill is not None
        else rng.integers(lo, hi + 1, (h, w, c)).astype(np.int8)
    )
    zx, zy = zps if zps is not None else (int(v) for v in rng.integers(lo, hi + 1, 2))
    ratio = float(rng.uniform(0.5, 2.0))
    divisors = range(1, kernel[0] * kernel[1] + 1) if count_pads is not None else [kernel[0] * kernel[1]]
    pairs = [
        ((1 << 31) - 1, shift) if shift is not None else quantize_multiplier(ratio / d) for d in divisors
    ]
    act_min, act_max = (lo, hi) if rng.random() < 0.6 else (zy, hi)
    attrs = {
        "kernel": list(kernel),
        "stride": list(stride),
        "pads": list(pads),
        "act_min": act_min,
        "act_max": act_max,
    }
    if count_pads is not None:
        attrs["count_pads"] = list(count_pads)
    op = QOp(
        name,
        "avgpool",
        ["x"],
        "y",
        attrs,
        {
            "multiplier": np.array([p[0] for p in pairs], np.int32),
            "shift": np.array([p[1] for p in pairs], np.int32),
        },
    )
    y = oracle.avgpool(
        x[None], op, QTensor("x", (1, c, h, w), bits, 1.0, zx), QTensor("y", (1,), bits, 1.0, zy)
    )[0]
    params = {
        "kernel": kernel, "stride": stride, "pads": pads, "count_pads": count_pads, "input_zp": zx,
        "output_zp": zy, "pairs": pairs, "act_min": act_min, "act_max": act_max,
    }  # fmt: skip
    return ElemCase(name, "avgpool", x, y, params=params)


def lut_case(rng, name, size, bits) -> ElemCase:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = rng.integers(lo, hi + 1, size).astype(np.int8)
    x[: min(size, 2)] = [lo, hi][: min(size, 2)]  # both ends of the table
    table = rng.integers(-128, 128, 1 << bits).astype(np.int8)
    op = QOp(name, "lut", ["x"], "y", {}, {"table": table})
    y = oracle.lut(x, op, QTensor("x", (size,), bits, 1.0, 0))
    return ElemCase(name, "lut", x, y, table=table, params={"input_min": lo})


def mul_case(
    rng, name, rows, channels, broadcast, shift, multiplier=None, bits=8, clamp=None, zps=None, fill=None
):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    a = rng.integers(lo, hi + 1, (rows, channels)).astype(np.int8)
    b = rng.integers(lo, hi + 1, (1 if broadcast else rows, channels)).astype(np.int8)
    if fill is not None:
        a[:], b[:] = fill
    za, zb, zy = zps if zps is not None else (int(v) for v in rng.integers(lo, hi + 1, 3))
    m = int(rng.integers(1 << 30, 1 << 31)) if multiplier is None else multiplier
    act_min, act_max = clamp if clamp is not None else (lo, hi)
    op = QOp(
        name,
        "mul",
        ["a", "b"],
        "y",
        {"act_min": act_min, "act_max": act_max},
        {"multiplier": np.array([m], np.int32), "shift": np.array([shift], np.int32)},
    )
    ta, tb = QTensor("a", a.shape, bits, 1.0, za), QTensor("b", b.shape, bits, 1.0, zb)
    y = oracle.mul(a, b, op, ta, tb, QTensor("y", a.shape, bits, 1.0, zy))
    params = {
        "a_zp": za, "b_zp": zb, "output_zp": zy, "multiplier": m, "shift": shift,
        "act_min": act_min, "act_max": act_max, "rows": rows, "channels": channels,
        "b_row_step": 0 if broadcast else channels,
    }  # fmt: skip
    return ElemCase(name, "mul", a, y, b=b, params=params)


def concat_case(rng, name, rows, channels, ratios, out_bits=8, same=(), shifts=None, zps=None, extreme=False):
    """Inputs of ``channels[i]`` per row at the scale ratios S_i / S_y (``same``: the output's
    quantization, a copy; ``shifts``: explicit (m, s) pairs where not None)."""
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    zy = int(rng.integers(lo, hi + 1))
    parts, zs, ms, ss = [], [], [], []
    for i, (n, ratio) in enumerate(zip(channels, ratios)):
        if extreme:
            x = np.full((rows, n), -128 if i % 2 else 127, np.int8)
        else:
            x = rng.integers(-128, 128, (rows, n)).astype(np.int8)
        if i in same:
            z, (m, s) = zy, (1 << 30, 30)
            x = np.clip(x, lo, hi).astype(np.int8) if out_bits == 8 else x
        else:
            z = int(rng.integers(-128, 128)) if zps is None else zps[i]
            m, s = quantize_multiplier(ratio) if shifts is None or shifts[i] is None else shifts[i]
        parts.append(x)
        zs.append(z)
        ms.append(m)
        ss.append(s)
    op = QOp(
        name,
        "concat",
        [f"x{i}" for i in range(len(parts))],
        "y",
        {"act_min": lo, "act_max": hi},
        {"multiplier": np.array(ms, np.int32), "shift": np.array(ss, np.int32)},
    )
    ts = [QTensor(f"x{i}", x.shape, 8, 1.0, z) for i, (x, z) in enumerate(zip(parts, zs))]
    out_t = QTensor("y", (rows, sum(channels)), out_bits, 1.0, zy)
    y = oracle.concat([x[None] for x in parts], op, ts, out_t)[0]
    params = {"zps": zs, "multipliers": ms, "shifts": ss, "output_zp": zy, "act_min": lo, "act_max": hi}
    return ElemCase(name, "concat", parts[0], y, parts=parts, params=params)


def make_cases() -> list[ElemCase]:
    rng = np.random.default_rng(20261204)
    cases = [
        # CNN stems and the usual windows
        maxpool_case(rng, "mp_stem_3x3s2", 24, 24, 16, (3, 3), (2, 2), (1, 1, 1, 1)),
        maxpool_case(rng, "mp_2x2s2_c32", 16, 16, 32, (2, 2), (2, 2), (0, 0, 0, 0)),
        maxpool_case(rng, "mp_3x3s1_c64", 8, 8, 64, (3, 3), (1, 1), (1, 1, 1, 1)),
        maxpool_case(rng, "mp_3x3s2_c96", 9, 9, 96, (3, 3), (2, 2), (0, 0, 0, 0)),
        maxpool_case(rng, "mp_ceil_c24", 15, 15, 24, (3, 3), (2, 2), (0, 0, 1, 1)),
        maxpool_case(rng, "mp_asym_c13", 7, 9, 13, (3, 2), (2, 1), (2, 1, 2, 1)),
        maxpool_case(rng, "mp_c1", 6, 7, 1, (2, 2), (1, 1), (1, 1, 0, 0)),
        maxpool_case(rng, "mp_c3", 10, 10, 3, (3, 3), (2, 2), (1, 1, 1, 1)),
        maxpool_case(rng, "mp_c6_a4", 8, 8, 6, (2, 2), (2, 2), (0, 0, 0, 0), bits=4),
        maxpool_case(rng, "mp_c7", 5, 5, 7, (5, 5), (1, 1), (2, 2, 2, 2)),
        maxpool_case(rng, "mp_c19", 6, 6, 19, (3, 3), (2, 2), (1, 1, 1, 1)),
        maxpool_case(rng, "mp_c35", 6, 5, 35, (2, 3), (2, 2), (0, 1, 1, 1)),
        maxpool_case(rng, "mp_c100", 4, 4, 100, (2, 2), (2, 2), (0, 0, 0, 0)),
        maxpool_case(rng, "mp_1d_c12", 1, 50, 12, (1, 3), (1, 2), (0, 1, 0, 1)),
        maxpool_case(rng, "mp_min_c20", 6, 6, 20, (3, 3), (2, 2), (1, 1, 1, 1), fill=-128),
        maxpool_case(rng, "mp_1x1_c9", 3, 3, 9, (1, 1), (1, 1), (0, 0, 0, 0)),
        # avgpool: 2x2 and 3x3, count_include_pad=0 / ceil_mode (count_pads), 1-D, every shift class
        avgpool_case(rng, "ap_2x2s2_c32", 16, 16, 32, (2, 2), (2, 2), (0, 0, 0, 0)),
        avgpool_case(rng, "ap_3x3s1_c24", 8, 8, 24, (3, 3), (1, 1), (1, 1, 1, 1)),
        avgpool_case(
            rng, "ap_3x3s2_cnt_c13", 9, 9, 13, (3, 3), (2, 2), (1, 1, 1, 1), count_pads=(0, 0, 0, 0)
        ),
        avgpool_case(rng, "ap_ceil_c20", 10, 10, 20, (3, 3), (2, 2), (0, 0, 1, 1), count_pads=(0, 0, 0, 0)),
        avgpool_case(rng, "ap_1d_c12", 1, 49, 12, (1, 4), (1, 2), (0, 1, 0, 1), count_pads=(0, 1, 0, 1)),
        avgpool_case(rng, "ap_c3_a4", 6, 6, 3, (2, 2), (2, 2), (0, 0, 0, 0), bits=4),
        avgpool_case(rng, "ap_16x16_c9", 16, 16, 9, (16, 16), (1, 1), (0, 0, 0, 0), fill=-128, zps=(127, 0)),
        avgpool_case(rng, "ap_17x16_c4", 17, 16, 4, (17, 16), (1, 1), (0, 0, 0, 0), fill=127, zps=(-128, 0)),
        avgpool_case(rng, "ap_s17", 5, 5, 8, (2, 2), (1, 1), (0, 0, 0, 0), shift=17),
        avgpool_case(rng, "ap_s18", 5, 5, 8, (2, 2), (1, 1), (0, 0, 0, 0), shift=18),
        avgpool_case(rng, "ap_s19", 5, 5, 8, (2, 2), (1, 1), (0, 0, 0, 0), shift=19),
        avgpool_case(rng, "ap_s54", 5, 5, 8, (3, 3), (1, 1), (1, 1, 1, 1), shift=54),
        avgpool_case(rng, "ap_s55", 5, 5, 8, (3, 3), (1, 1), (1, 1, 1, 1), shift=55),
        avgpool_case(rng, "ap_s62", 5, 5, 8, (3, 3), (1, 1), (1, 1, 1, 1), shift=62),
        avgpool_case(rng, "ap_s1_m", 4, 4, 7, (2, 2), (2, 2), (0, 0, 0, 0), shift=1),
        # lut: 8-bit (sigmoid / SiLU in W4A8), 4-bit (W4A4: the pair table from 1024 elements), 2-bit
        lut_case(rng, "lut8_4096", 4096, 8),
        lut_case(rng, "lut8_1027", 1027, 8),
        lut_case(rng, "lut8_5", 5, 8),
        lut_case(rng, "lut4_4096", 4096, 4),
        lut_case(rng, "lut4_4099", 4099, 4),
        lut_case(rng, "lut4_1026", 1026, 4),
        lut_case(rng, "lut4_1023", 1023, 4),
        lut_case(rng, "lut4_100", 100, 4),
        lut_case(rng, "lut2_2001", 2001, 2),
        lut_case(rng, "lut8_1", 1, 8),
        # mul: element-wise and squeeze-excite gates, the shift classes the variants branch on
        mul_case(rng, "mul_se_c32", 64, 32, True, 38),
        mul_case(rng, "mul_se_c24_a4", 49, 24, True, 35, bits=4),
        mul_case(rng, "mul_ew_16x16x16", 256, 16, False, 36),
        mul_case(rng, "mul_ew_c7", 9, 7, False, 40),
        mul_case(rng, "mul_se_c13", 10, 13, True, 33),
        mul_case(rng, "mul_se_c3", 5, 3, True, 45),
        mul_case(rng, "mul_s32", 4, 20, False, 32),
        mul_case(rng, "mul_s54", 3, 21, True, 54, multiplier=(1 << 31) - 1),
        mul_case(rng, "mul_s55", 3, 22, False, 55, multiplier=(1 << 31) - 1),
        mul_case(rng, "mul_s62", 2, 17, True, 62, multiplier=(1 << 31) - 1),
        mul_case(rng, "mul_s31", 3, 9, False, 31),
        mul_case(rng, "mul_s20", 2, 11, True, 20),
        mul_case(rng, "mul_s19", 3, 12, False, 19),
        mul_case(rng, "mul_s18", 3, 16, True, 18),
        mul_case(rng, "mul_s17", 2, 16, False, 17),
        mul_case(rng, "mul_s30_a4", 36, 16, True, 30, bits=4),
        mul_case(rng, "mul_s31_a4_ew", 16, 24, False, 31, bits=4, clamp=(-3, 7)),
        mul_case(rng, "mul_m0", 3, 12, False, 1, multiplier=0),
        mul_case(rng, "mul_relu", 8, 40, True, 39, clamp=(-20, 127), zps=(3, -128, -20)),
        mul_case(rng, "mul_clip", 8, 36, False, 37, clamp=(-50, 60)),
        mul_case(rng, "mul_one_value", 4, 16, False, 37, clamp=(5, 5)),
        mul_case(
            rng,
            "mul_max_pos",
            4,
            16,
            False,
            33,
            multiplier=(1 << 31) - 1,
            zps=(127, -128, 0),
            fill=(-128, 127),
        ),
        mul_case(
            rng,
            "mul_max_neg",
            4,
            16,
            True,
            33,
            multiplier=(1 << 31) - 1,
            zps=(127, 127, 0),
            fill=(-128, -128),
        ),
        mul_case(
            rng,
            "mul_max_s47",
            4,
            16,
            False,
            47,
            multiplier=(1 << 31) - 1,
            zps=(-128, 127, 0),
            fill=(127, -128),
        ),
        # concat: SqueezeNet's fire modules, U-Net skips, copies, every shift class
        concat_case(rng, "cat_fire_16_16", 144, [16, 16], [0.8, 1.3]),
        concat_case(rng, "cat_unet_copy", 64, [24, 8], [1.0, 0.6], same=(0,)),
        concat_case(rng, "cat_copy_a4", 30, [7, 9], [1.0, 1.0], out_bits=4, same=(0, 1)),
        concat_case(rng, "cat_copy_full", 20, [13, 32], [1.0, 0.9], same=(0,)),
        concat_case(rng, "cat_odd_3", 25, [3, 5, 7], [0.5, 1.9, 1.0]),
        concat_case(rng, "cat_rows1", 1, [1000, 333], [0.7, 1.1]),
        concat_case(rng, "cat_a4_out", 40, [12, 20], [0.07, 0.1], out_bits=4),
        concat_case(rng, "cat_s10_s9", 6, [9, 10], [0, 0], shifts=[((1 << 30) + 5, 10), ((1 << 31) - 1, 9)]),
        concat_case(
            rng, "cat_s54_s55", 6, [11, 12], [0, 0], shifts=[((1 << 31) - 1, 54), ((1 << 31) - 1, 55)]
        ),
        concat_case(rng, "cat_s62_m0", 6, [8, 17], [0, 0], shifts=[((1 << 31) - 1, 62), (0, 1)]),
        concat_case(
            rng, "cat_s32_s33", 6, [20, 4], [0, 0], shifts=[((1 << 30) + 77, 32), ((1 << 31) - 9, 33)]
        ),
        concat_case(
            rng,
            "cat_extreme",
            8,
            [16, 16, 4, 4],
            [1.99, 1.99, 0.01, 0.5],
            zps=[-128, 127, -128, 127],
            extreme=True,
        ),
    ]
    return cases


CASES = make_cases()
KIND_IDS = {"maxpool": 0, "lut": 1, "mul": 2, "concat": 3, "avgpool": 4}


def write_cases_header(cases: list[ElemCase], path: Path) -> None:
    parts = [
        "/* Generated by tests/targets/test_kernels_elem_mcu.py. */\n#include <stdint.h>\n",
        '#include "q4_kernels.h"\n#include "q4_elementwise.h"\n',
        *(f"#define Q4_CASE_{k.upper()} {v}\n" for k, v in KIND_IDS.items()),
        "typedef struct {\n  const char *name;\n  int32_t kind;\n  q4_pool_params pool;\n"
        "  q4_dims input_dims;\n  q4_dims output_dims;\n  const int8_t *table;\n  int32_t input_min;\n"
        "  q4_mul_params mul;\n  q4_concat_params concat;\n  const int8_t *const *inputs;\n"
        "  int32_t rows, channels, b_row_step;\n  const int8_t *a;\n"
        "  const int8_t *b;\n  int32_t size;\n  const int8_t *expected;\n} q4_elem_case;\n",
    ]
    rows = []
    for i, c in enumerate(cases):
        parts += [c_array("int8_t", f"a{i}", c.a), c_array("int8_t", f"y{i}", c.expected)]
        pool, in_dims, out_dims, table, input_min = "{0}", "{0, 0, 0}", "{0, 0, 0}", "0", 0
        mul, rcs, b, cat, inputs = "{0}", "0, 0, 0", "0", "{0}", "0"
        if c.kind == "maxpool":
            p = c.params
            pool = (
                f"{{{p['kernel'][0]}, {p['kernel'][1]}, {p['stride'][0]}, {p['stride'][1]}, "
                f"{p['pads'][0]}, {p['pads'][1]}, 0, 0, 0, 1, -128, 127, 0, 0, 0, 0, 0, 0}}"
            )
            in_dims = "{%d, %d, %d}" % c.a.shape
            out_dims = "{%d, %d, %d}" % c.expected.shape
        elif c.kind == "avgpool":
            p = c.params
            m, sh = p["pairs"][-1]
            counts = "0, 0, 0, 0, 0, 0"
            if p["count_pads"] is not None:
                parts.append(c_array("int32_t", f"cm{i}", [q[0] for q in p["pairs"]]))
                parts.append(c_array("int32_t", f"cs{i}", [q[1] for q in p["pairs"]]))
                counts = f"cm{i}, cs{i}, " + ", ".join(str(v) for v in p["count_pads"])
            pool = (
                f"{{{p['kernel'][0]}, {p['kernel'][1]}, {p['stride'][0]}, {p['stride'][1]}, "
                f"{p['pads'][0]}, {p['pads'][1]}, {p['input_zp']}, {p['output_zp']}, {m}, {sh}, "
                f"{p['act_min']}, {p['act_max']}, {counts}}}"
            )
            in_dims = "{%d, %d, %d}" % c.a.shape
            out_dims = "{%d, %d, %d}" % c.expected.shape
        elif c.kind == "lut":
            parts.append(c_array("int8_t", f"t{i}", c.table))
            table, input_min = f"t{i}", c.params["input_min"]
        elif c.kind == "concat":
            p, n = c.params, len(c.parts)
            for j, x in enumerate(c.parts):
                parts.append(c_array("int8_t", f"c{i}_{j}", x))
            parts.append(
                f"static const int8_t *const in{i}[{n}] = {{{', '.join(f'c{i}_{j}' for j in range(n))}}};\n"
            )
            for key, values in (
                ("ch", [x.shape[1] for x in c.parts]),
                ("zp", p["zps"]),
                ("m", p["multipliers"]),
                ("s", p["shifts"]),
            ):
                parts.append(c_array("int32_t", f"{key}{i}", values))
            cat = f"{{{n}, ch{i}, zp{i}, m{i}, s{i}, {p['output_zp']}, {p['act_min']}, {p['act_max']}}}"
            rcs, inputs = f"{c.parts[0].shape[0]}, 0, 0", f"in{i}"
        else:
            p = c.params
            parts.append(c_array("int8_t", f"b{i}", c.b))
            mul = (
                f"{{{p['a_zp']}, {p['b_zp']}, {p['output_zp']}, {p['multiplier']}, {p['shift']}, "
                f"{p['act_min']}, {p['act_max']}}}"
            )
            rcs, b = f"{p['rows']}, {p['channels']}, {p['b_row_step']}", f"b{i}"
        rows.append(
            f'  {{"{c.name}", {KIND_IDS[c.kind]}, {pool}, {in_dims}, {out_dims}, {table}, {input_min}, '
            f"{mul}, {cat}, {inputs}, {rcs}, a{i}, {b}, {c.expected.size}, y{i}}}"
        )
    parts.append(f"#define Q4_OUTPUT_BYTES {max(c.expected.size for c in cases)}\n")
    parts.append("static const q4_elem_case q4_elem_cases[] = {\n" + ",\n".join(rows) + "\n};\n")
    path.write_text("".join(parts))


def build_and_run(board, out_dir: Path, extra_cflags=()):
    write_cases_header(CASES, out_dir / "elem_cases.h")
    return run_harness(
        board,
        [HARNESS, *PORTABLE, *VARIANTS],
        [RUNTIME / "include", RUNTIME / "include" / "internal", out_dir],
        out_dir,
        "elem_harness",
        extra_cflags=extra_cflags,
    )


@pytest.fixture(scope="module")
def board_results(tmp_path_factory):
    return runs_per_board(tmp_path_factory, build_and_run)


def _bad(results):
    return [r for r in results if r.mismatches or not r.guard_ok]


def test_cases_cover_the_interesting_parameters():
    pools = [c for c in CASES if c.kind == "maxpool"]
    assert {c.a.shape[2] % 4 for c in pools} == {0, 1, 2, 3}
    assert {c.a.shape[2] % 16 for c in pools} >= {0, 3, 4, 8, 12}
    assert any(c.a.shape[2] >= 64 for c in pools)  # the 64-channel MVE block
    assert any(max(c.params["pads"]) > 0 and c.a.min() == -128 == c.a.max() for c in pools)
    avgs = [c for c in CASES if c.kind == "avgpool"]
    assert {c.a.shape[2] % 8 for c in avgs} >= {0, 1, 3, 4, 5, 7}
    assert {s for c in avgs for _, s in c.params["pairs"]} >= {1, 17, 18, 19, 54, 55, 62}
    assert any(c.params["count_pads"] is not None for c in avgs)
    assert any(c.params["kernel"][0] * c.params["kernel"][1] == 256 for c in avgs)
    assert any(c.params["kernel"][0] * c.params["kernel"][1] > 256 for c in avgs)
    luts = [c for c in CASES if c.kind == "lut"]
    assert {c.params["input_min"] for c in luts} == {-128, -8, -2}
    assert any(c.params["input_min"] == -8 and c.a.size >= 1024 and c.a.size % 4 for c in luts)
    muls = [c for c in CASES if c.kind == "mul"]
    shifts = {c.params["shift"] for c in muls}
    assert {1, 17, 18, 19, 20, 30, 31, 32, 33, 54, 55, 62} <= shifts
    assert {c.params["b_row_step"] == 0 for c in muls} == {True, False}
    assert any(c.params["act_min"] == c.params["act_max"] for c in muls)
    products = [
        (int(c.a.min()) - c.params["a_zp"]) * (int(c.b.min()) - c.params["b_zp"])
        for c in muls
        if c.name.startswith("mul_max")
    ]
    assert 65025 in products and -65025 in products
    cats = [c for c in CASES if c.kind == "concat"]
    cat_shifts = {s for c in cats for s in c.params["shifts"]}
    assert {1, 9, 10, 30, 32, 33, 54, 55, 62} <= cat_shifts
    assert any(c.params["act_max"] == 7 and 30 in c.params["shifts"] for c in cats)  # clamped copy
    assert {x.shape[1] % 4 for c in cats for x in c.parts} == {0, 1, 2, 3}


@pytest.mark.parametrize("board_name", BOARDS)
def test_variants_are_bit_exact_on_target(board_name, board_results):
    results = board_results(board_name)
    for kind, variants in BOARD_VARIANTS[board_name].items():
        names = {c.name for c in CASES if c.kind == kind}
        assert {r.variant for r in results if r.case in names} == variants, kind
    assert not _bad(results), _bad(results)
    a4 = [r for r in results if r.variant == "a4_dsp"]
    assert a4 and all(r.scratch_bytes == LUT_PAIRS_BYTES for r in a4)


@pytest.mark.parametrize("board_name", BOARDS)
def test_variants_are_faster(board_name, board_results):
    """Instructions per call against the portable kernel on the hot shapes."""
    n = {(r.case, r.variant): r.instructions for r in board_results(board_name)}
    best = "mve" if board_name == "mps3-an547" else "dsp"
    assert n[("mp_stem_3x3s2", best)] * 3 < n[("mp_stem_3x3s2", "portable")], n
    assert n[("lut4_4096", "a4_dsp")] < n[("lut4_4096", "dsp")] < n[("lut4_4096", "portable")], n
    assert n[("lut8_4096", best)] * 1.5 < n[("lut8_4096", "portable")], n
    assert n[("mul_se_c32", best)] * 2 < n[("mul_se_c32", "portable")], n
    assert n[("cat_fire_16_16", best)] * 2 < n[("cat_fire_16_16", "portable")], n
    assert n[("ap_3x3s1_c24", best)] * 3 < n[("ap_3x3s1_c24", "portable")], n


def test_variants_are_bit_exact_unoptimised(tmp_path):
    board = load_board("mps3-an547")
    require_tools(board)
    results = build_and_run(board, tmp_path, extra_cflags=["-O0"])
    assert not _bad(results), _bad(results)


def test_generator_registers_the_variants():
    for kind in KINDS:
        names = [v.function for v in KERNEL_VARIANTS[kind]]
        assert names[0] == f"q4_{kind}_s8_mve" and names[-1] == f"q4_{kind}_s8_dsp", names
    lut = {v.function: v for v in KERNEL_VARIANTS["lut"]}
    assert lut["q4_lut_s8_a4_dsp"].max_input_bits == 4
    assert lut["q4_lut_s8_a4_dsp"].scratch_bytes(0, 0) == LUT_PAIRS_BYTES
    others = [
        v
        for kind in ("maxpool", "lut", "mul")
        for v in KERNEL_VARIANTS[kind]
        if v.function != "q4_lut_s8_a4_dsp"
    ]
    assert all(v.scratch_bytes(0, 0) == 0 for v in others)


@pytest.mark.parametrize("board_name", BOARDS)
def test_generated_squeeze_excite_model_calls_the_variants(board_name, tmp_path):
    """A quantized squeeze-excite model (sigmoid lut, [N, C, 1, 1] mul) at W4A4, generated for the
    board with its default (optimised) kernels, runs bit-exact against the oracle."""
    pytest.importorskip("torch")
    import q4sdk
    from q4sdk.targets.run import run_on_board
    from tests.zoo.models import build, random_inputs

    board = load_board(board_name)
    require_tools(board)
    model = q4sdk.quantize(build("op_mul_se"), random_inputs("op_mul_se", 8, seed=1).numpy(), activations=4)
    xq = oracle.quantize_input(model, random_inputs("op_mul_se", 1, seed=2).numpy())
    run = run_on_board(model, board, xq, tmp_path / "run")
    assert run.ok
    kernels = {layer.kind: layer.kernel for layer in run.layers if layer.kind in ("lut", "mul")}
    arch = "mve" if board_name == "mps3-an547" else "dsp"
    assert kernels == {"lut": f"q4_lut_s8_{'mve' if arch == 'mve' else 'a4_dsp'}", "mul": f"q4_mul_s8_{arch}"}


def _compile(compiler: str, flags: list[str], source: Path):
    return subprocess.run([compiler, *flags, *STRICT_FLAGS, str(source)], capture_output=True, text=True)


@pytest.mark.parametrize("core", sorted(CORES))
def test_sources_compile_warning_free(core):
    compiler = "arm-none-eabi-gcc"
    if shutil.which(compiler) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {compiler} is not on PATH")
        pytest.skip(f"{compiler} is not on PATH")
    for source in VARIANTS:
        result = _compile(compiler, CORES[core], source)
        assert result.returncode == 0, f"{source.name}:\n{result.stderr}"


def test_sources_compile_on_the_host():
    for compiler in ("gcc", "clang"):
        if shutil.which(compiler) is None:
            continue
        for source in VARIANTS:
            result = _compile(compiler, [], source)
            assert result.returncode == 0, f"{compiler} {source.name}:\n{result.stderr}"


if __name__ == "__main__":  # pragma: no cover - prints instructions per output element
    import tempfile

    for name in BOARDS:
        with tempfile.TemporaryDirectory() as tmp:
            res = build_and_run(load_board(name), Path(tmp))
        for c in CASES:
            n = {r.variant: round(r.instructions / c.expected.size, 2) for r in res if r.case == c.name}
            print(name, c.name, c.a.shape, n)
