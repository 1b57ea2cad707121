"""Random and fixed-shape conv2d cases for the on-target kernel harness (``conv_harness.c``).

A case is one integer conv2d layer with its input and the oracle's output. ``write_cases_header``
lays a list of cases out as C arrays (``conv_cases.h``); ``build_and_run`` builds the harness
with the portable and optimised kernels for a board, runs it under QEMU and returns one
``VariantResult`` per case and kernel variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcu.harness import VariantResult, c_array, run_harness
from q4sdk.ir import oracle
from q4sdk.ir.packing import pack_int4_rows
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.targets.boards import Board

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime_c"
HARNESS = Path(__file__).resolve().parent / "conv_harness.c"
KERNEL_SOURCES = [
    RUNTIME / "src" / "convolution" / name
    for name in ("q4_conv2d_s4.c", "q4_conv2d_s4_dsp.c", "q4_conv2d_s4_mve.c", "q4_conv2d_s4_armv6m.c")
]

# Scratch sizes (bytes) of the optimised kernels, as documented in q4_kernels_opt.h.
DSP_CHANNEL_BLOCK, DSP_PIXELS, MVE_PIXELS, MVE_BLOCK_CHANNELS = 16, 4, 4, 16
MVE_BLOCK_BYTES = 9216  # _mve: more channels per block while their unpacked weights fit this
A4_DSP_MAX_K = 16383


def dsp_scratch_bytes(k: int) -> int:
    k8 = -(-k // 8) * 8
    return 4 * DSP_CHANNEL_BLOCK + (DSP_CHANNEL_BLOCK + DSP_PIXELS) * 2 * k8 + k8


def a4_dsp_scratch_bytes(k: int) -> int:
    k8 = -(-k // 8) * 8
    if k > A4_DSP_MAX_K:
        return dsp_scratch_bytes(k)
    return 4 * DSP_CHANNEL_BLOCK + (DSP_CHANNEL_BLOCK + 2 * DSP_PIXELS + 1) * k8


def armv6m_scratch_bytes(k: int) -> int:
    k16 = -(-k // 16) * 16
    return 32 + 17 * k16


def mve_scratch_bytes(k: int, out_c: int) -> int:
    k16 = -(-k // 16) * 16
    block = min(out_c + out_c % 2, max(MVE_BLOCK_CHANNELS, (MVE_BLOCK_BYTES // k16) & ~1))
    return 16 * block + (block + MVE_PIXELS + 2) * k16 + 16


@dataclass
class ConvCase:
    """One conv2d layer: int8 input [H, W, I], int4 weight [O, kh, kw, I], oracle output."""

    name: str
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    input_zp: int
    output_zp: int
    act_min: int
    act_max: int
    expected: np.ndarray
    bits: int

    @property
    def k(self) -> int:
        return int(np.prod(self.weight.shape[1:]))

    @property
    def macs(self) -> int:
        return int(self.expected.size * self.k)


def make_case(
    name: str,
    x: np.ndarray,
    weight: np.ndarray,
    bias,
    multiplier,
    shift,
    stride,
    pads,
    in_t: QTensor,
    out_t: QTensor,
    act_min: int,
    act_max: int,
) -> ConvCase:
    """A case whose expected output is computed by ``q4sdk.ir.oracle.conv2d``."""
    arrays = {
        "weight": weight.astype(np.int8),
        "bias": np.asarray(bias, np.int32),
        "multiplier": np.asarray(multiplier, np.int32),
        "shift": np.asarray(shift, np.int32),
    }
    op = QOp(
        name,
        "conv2d",
        ["x"],
        "y",
        {"stride": list(stride), "pads": list(pads), "act_min": act_min, "act_max": act_max},
        arrays,
    )
    model = QModel(name, in_t.name, out_t.name, {in_t.name: in_t, out_t.name: out_t}, [op])
    expected = oracle.run_oracle(model, x[None])[0]
    return ConvCase(
        name,
        x,
        arrays["weight"],
        arrays["bias"],
        arrays["multiplier"],
        arrays["shift"],
        tuple(stride),
        tuple(pads),
        in_t.zero_point,
        out_t.zero_point,
        act_min,
        act_max,
        expected,
        in_t.bits,
    )


def random_case(
    rng: np.random.Generator,
    name: str,
    bits: int,
    h: int,
    w: int,
    in_c: int,
    out_c: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    slow_shifts: bool = False,
    extreme: bool = False,
    shifts: tuple[int, int] | None = None,
    act: tuple[int, int] | None = None,
) -> ConvCase:
    """A random layer of the given shape: activations of ``bits`` bits with a random zero point,
    per-channel multipliers (some zero), shifts above 32 scaled so the outputs spread over the
    range (all of them at most 32 with ``slow_shifts``), a random output clamp and bias. With
    ``extreme`` activations and weights take only their two end values (the largest products,
    which the 4-bit-activation kernel's packed fields must hold). ``shifts = (lo, hi)`` draws
    the shifts from [lo, hi] instead (edge cases of the requantization); ``act`` fixes the output
    clamp [act_min, act_max]."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    in_zp = int(rng.integers(qmin, qmax + 1))
    out_zp = int(rng.integers(qmin // 4, qmax // 4 + 1))
    x = rng.integers(qmin, qmax + 1, (h, w, in_c)).astype(np.int8)
    weight = rng.integers(-8, 8, (out_c, *kernel, in_c)).astype(np.int8)
    if extreme:
        x = rng.choice(np.array([qmin, qmax], np.int8), (h, w, in_c), p=[0.8, 0.2])
        weight = rng.choice(np.array([-8, 7], np.int8), weight.shape, p=[0.8, 0.2])
    k = kernel[0] * kernel[1] * in_c
    sigma = max(1.0, float(np.std(x.astype(np.int64) - in_zp)) * 4.6 * np.sqrt(k))
    bias = rng.integers(-int(2 * sigma), int(2 * sigma) + 1, out_c)
    multiplier = rng.integers(1 << 30, 1 << 31, out_c)
    multiplier[rng.random(out_c) < 0.1] = 0
    # shift chosen so that the requantized accumulators spread over the output range
    centre = int(round(30.5 + np.log2(2.5 * sigma) - (bits - 1)))
    if slow_shifts:
        shift = rng.integers(max(1, centre - 12), 33, out_c)
    else:
        shift = rng.integers(centre - 1, centre + 2, out_c)
    if shifts is not None:
        shift = rng.integers(shifts[0], shifts[1] + 1, out_c)
    shift = np.clip(shift, 1, 62)
    quarter = (qmax - qmin + 1) // 4
    lo, hi = qmin, qmax
    if rng.random() < 0.5:  # a narrower (fused activation) range
        lo = int(rng.integers(qmin, qmin + quarter))
        hi = int(rng.integers(qmax - quarter, qmax + 1))
    if act is not None:
        lo, hi = act
    in_t = QTensor("x", (h, w, in_c), bits, 1.0, in_zp)
    ho = (h + pads[0] + pads[2] - kernel[0]) // stride[0] + 1
    wo = (w + pads[1] + pads[3] - kernel[1]) // stride[1] + 1
    out_t = QTensor("y", (ho, wo, out_c), bits, 1.0, out_zp)
    return make_case(name, x, weight, bias, multiplier, shift, stride, pads, in_t, out_t, lo, hi)


def write_cases_header(cases: list[ConvCase], path: Path) -> None:
    """Writes ``conv_cases.h``: the case table, the data arrays and the buffer sizes."""
    parts = [
        "/* Generated by tests/mcu/conv_cases.py. */\n#include <stdint.h>\n",
        '#include "q4_kernels.h"\n',
        "typedef struct {\n  const char *name;\n  q4_conv_params params;\n"
        "  q4_quant_params quant;\n  q4_dims input_dims, filter_dims, output_dims;\n"
        "  const int8_t *input;\n  const uint8_t *filter;\n  const int32_t *bias;\n"
        "  const int8_t *expected;\n  int32_t bits;\n} q4_conv_case;\n",
    ]
    rows = []
    for i, c in enumerate(cases):
        o = c.weight.shape[0]
        parts += [
            c_array("int8_t", f"x{i}", c.x),
            c_array("uint8_t", f"w{i}", pack_int4_rows(c.weight.reshape(o, -1))),
            c_array("int32_t", f"b{i}", c.bias),
            c_array("int32_t", f"m{i}", c.multiplier),
            c_array("int32_t", f"s{i}", c.shift),
            c_array("int8_t", f"y{i}", c.expected),
        ]
        h, w, ic = c.x.shape
        ho, wo, oc = c.expected.shape
        rows.append(
            f'  {{"{c.name}", {{{c.input_zp}, {c.output_zp}, {c.stride[0]}, {c.stride[1]}, '
            f"{c.pads[0]}, {c.pads[1]}, {c.act_min}, {c.act_max}}}, {{m{i}, s{i}}}, "
            f"{{{h}, {w}, {ic}}}, {{{c.weight.shape[1]}, {c.weight.shape[2]}, {ic}}}, "
            f"{{{ho}, {wo}, {oc}}}, x{i}, w{i}, b{i}, y{i}, {c.bits}}}"
        )
    out_bytes = max(c.expected.size for c in cases)
    scratch = max(
        max(
            dsp_scratch_bytes(c.k),
            a4_dsp_scratch_bytes(c.k),
            mve_scratch_bytes(c.k, c.expected.shape[2]),
            armv6m_scratch_bytes(c.k),
        )
        for c in cases
    )
    parts.append(f"#define Q4_OUTPUT_BYTES {out_bytes}\n#define Q4_SCRATCH_WORDS {scratch // 4 + 1}\n")
    parts.append("static const q4_conv_case q4_cases[] = {\n" + ",\n".join(rows) + "\n};\n")
    path.write_text("".join(parts))


def build_and_run(
    board: Board, cases: list[ConvCase], out_dir: Path, timeout: float = 120, extra_cflags=()
) -> list[VariantResult]:
    """Builds the harness for ``board`` with ``cases`` and runs it; FirmwareError on failure.
    ``-DQ4_HARNESS_ARMV6M`` in ``extra_cflags`` adds the _armv6m variant on any core (it is
    always there on ARMv6-M)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_cases_header(cases, out_dir / "conv_cases.h")
    return run_harness(
        board,
        [HARNESS, *KERNEL_SOURCES],
        [RUNTIME / "include", RUNTIME / "include" / "internal", out_dir],
        out_dir,
        "conv_harness",
        timeout,
        extra_cflags,
    )
