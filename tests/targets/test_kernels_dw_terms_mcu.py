"""The optimised multi-term depthwise kernels (q4_depthwise_conv2d_s4_terms_dsp / _mve) on their boards.

Random multi-term depthwise layers (1-2 input terms x 1-2 weight terms, each input with its own
zero point; channel counts 1 to 40 with 4/8 tails and several blocks of 32, 3x3 kernels at strides
1 and 2 (both row tiles and narrow rows), unequal strides, 5x5, 7x7 (more taps than int16 lanes
sum exactly), 1x1 and 2x3 kernels, asymmetric and all-border paddings, rows wider than the tiles,
4- and 8-bit activations, multipliers of either sign below 2^29 and some zero, shifts that take
the vector and the exact requantization path, biases at the int32 bound, activations and weights
at their end values) are computed by ``q4sdk.ir.oracle``, written into one harness firmware per
board (``tests/mcu/dw_terms_harness.c``) and run under QEMU: the Cortex-M4 (mps2-an386) runs the
portable terms kernel and _terms_dsp, the Cortex-M55 (mps3-an547) the portable kernel,
_terms_dsp and _terms_mve. Every output byte must match, nothing may be written past the output
or the declared scratch, and each *_get_buffer_size must equal the generator's formula. On a
MobileNet-like 16x16x32 layer and DS-CNN-like stride-2 layers the harness also times the
single-term kernels: a dual layer costs at most 2.2x. A generated model with a dual depthwise
layer on a residual input runs bit-exact through ``run_on_board(..., kernels="optimised")``.

Tests skip when the Arm toolchain or QEMU is missing, and fail instead when CI is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcu.conv_cases import RUNTIME  # noqa: E402
from mcu.harness import CORES, STRICT_FLAGS, require_tools, run_harness  # noqa: E402
from mcu.terms_table import write_terms_header  # noqa: E402
from q4sdk.codegen.kernels import KERNEL_VARIANTS, TERMS_VARIANTS  # noqa: E402
from q4sdk.ir import oracle  # noqa: E402
from q4sdk.ir.qmodel import QModel, QOp, QTensor  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402

HARNESS = Path(__file__).resolve().parents[1] / "mcu" / "dw_terms_harness.c"
CONV_DIR = RUNTIME / "src" / "convolution"
TERMS_SOURCES = [
    CONV_DIR / "q4_depthwise_conv2d_s4_terms_dsp.c",
    CONV_DIR / "q4_depthwise_conv2d_s4_terms_mve.c",
]
HARNESS_SOURCES = [
    HARNESS,
    CONV_DIR / "q4_depthwise_conv2d_s4_terms.c",
    *TERMS_SOURCES,
    CONV_DIR / "q4_depthwise_conv2d_s4.c",
    CONV_DIR / "q4_depthwise_conv2d_s4_dsp.c",
    CONV_DIR / "q4_depthwise_conv2d_s4_mve.c",
]
BOARD_VARIANTS = {"mps2-an386": {"portable", "dsp"}, "mps3-an547": {"portable", "dsp", "mve"}}
TERM_MULT_LIMIT = 1 << 29


@dataclass
class DwTermsCase:
    """One multi-term depthwise layer: inputs [n_in][H, W, C], weights [n_w][C, kh, kw]."""

    name: str
    xs: list[np.ndarray]
    input_zps: list[int]
    weights: list[np.ndarray]
    bias: np.ndarray
    multiplier: np.ndarray  # [T, C]
    shift: np.ndarray  # [C]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    output_zp: int
    act_min: int
    act_max: int
    bits: int
    expected: np.ndarray
    single: bool = False  # also time the single-term kernels on this shape

    @property
    def taps(self) -> int:
        return int(self.weights[0].shape[1] * self.weights[0].shape[2])

    @property
    def channels(self) -> int:
        return int(self.weights[0].shape[0])


def dw_terms_op(name, inputs, weights, bias, multiplier, shift, stride, pads, act_min, act_max, output="y"):
    """A multi-term depthwise_conv2d QOp (``weight2`` when there are two weight tensors)."""
    arrays = {
        "weight": weights[0].astype(np.int8),
        "bias": np.asarray(bias, np.int32),
        "multiplier": np.asarray(multiplier, np.int32),
        "shift": np.asarray(shift, np.int32),
    }
    if len(weights) == 2:
        arrays["weight2"] = weights[1].astype(np.int8)
    attrs = {"stride": list(stride), "pads": list(pads), "act_min": act_min, "act_max": act_max}
    return QOp(name, "depthwise_conv2d", inputs, output, attrs, arrays)


def random_dw_terms_case(
    rng: np.random.Generator,
    name: str,
    bits: int,
    h: int,
    w: int,
    c: int,
    kernel,
    stride,
    pads,
    n_in: int,
    n_w: int,
    *,
    extreme: bool = False,
    shifts: tuple[int, int] | None = None,
    big_bias: bool = False,
    single: bool = False,
) -> DwTermsCase:
    """A random multi-term depthwise layer; shifts centred so the outputs spread over the range
    unless ``shifts = (lo, hi)``; ``extreme``: activations and weights at their end values,
    multipliers at +-(2^29 - 1); ``big_bias``: |bias| + 2040 kh kw = 2^31 - 1."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    taps = kernel[0] * kernel[1]
    zps = [int(rng.integers(qmin, qmax + 1)) for _ in range(n_in)]
    if extreme:
        xs = [rng.choice(np.array([qmin, qmax], np.int8), (h, w, c), p=[0.8, 0.2]) for _ in range(n_in)]
        weights = [rng.choice(np.array([-8, 7], np.int8), (c, *kernel), p=[0.8, 0.2]) for _ in range(n_w)]
    else:
        xs = [rng.integers(qmin, qmax + 1, (h, w, c)).astype(np.int8) for _ in range(n_in)]
        weights = [rng.integers(-8, 8, (c, *kernel)).astype(np.int8) for _ in range(n_w)]
    n_terms = n_in * n_w
    sigma = max(1.0, float(np.std(xs[0].astype(np.int64) - zps[0])) * 4.6 * np.sqrt(taps))
    bias = rng.integers(-int(2 * sigma), int(2 * sigma) + 1, c)
    if big_bias:
        bias = rng.choice([-1, 1], c) * ((1 << 31) - 1 - 2040 * taps)
    multiplier = rng.integers(1 << 27, TERM_MULT_LIMIT, (n_terms, c)) * rng.choice([-1, 1], (n_terms, c))
    multiplier[rng.random((n_terms, c)) < 0.1] = 0
    if extreme:
        multiplier = rng.choice([-1, 1], (n_terms, c)) * (TERM_MULT_LIMIT - 1)
    centre = int(round(28.5 + np.log2(2.5 * sigma * np.sqrt(n_terms)) - (bits - 1)))
    lo_s, hi_s = shifts if shifts is not None else (centre - 1, centre + 1)
    shift = np.clip(rng.integers(lo_s, hi_s + 1, c), 1, 62)
    quarter = (qmax - qmin + 1) // 4
    lo, hi = qmin, qmax
    if rng.random() < 0.5:
        lo = int(rng.integers(qmin, qmin + quarter))
        hi = int(rng.integers(qmax - quarter, qmax + 1))
    out_zp = int(rng.integers(qmin // 4, qmax // 4 + 1))
    ts = [QTensor(f"x{i}", (h, w, c), bits, 1.0, zps[i]) for i in range(n_in)]
    ho = (h + pads[0] + pads[2] - kernel[0]) // stride[0] + 1
    wo = (w + pads[1] + pads[3] - kernel[1]) // stride[1] + 1
    out_t = QTensor("y", (ho, wo, c), bits, 1.0, out_zp)
    op = dw_terms_op(name, [t.name for t in ts], weights, bias, multiplier, shift, stride, pads, lo, hi)
    expected = oracle.depthwise_conv2d([x[None] for x in xs], op, ts, out_t)[0]
    arrays = op.arrays
    return DwTermsCase(
        name,
        xs,
        zps,
        weights,
        arrays["bias"],
        arrays["multiplier"],
        arrays["shift"],
        tuple(stride),
        tuple(pads),
        out_zp,
        lo,
        hi,
        bits,
        expected,
        single,
    )


# (h, w, c, kernel, stride, pads)
SHAPES = [
    (5, 6, 3, (3, 3), (1, 1), (1, 1, 1, 1)),
    (6, 7, 8, (3, 3), (1, 1), (1, 1, 1, 1)),
    (7, 9, 5, (3, 3), (2, 2), (0, 0, 1, 1)),
    (9, 20, 12, (3, 3), (2, 2), (1, 1, 1, 1)),  # stride 2 into rows of 10: the _dsp row path
    (4, 70, 5, (3, 3), (1, 1), (1, 1, 1, 1)),  # rows wider than the tiles
    (9, 7, 33, (3, 3), (1, 1), (1, 1, 1, 1)),  # 33 channels: two blocks of records
    (8, 9, 40, (3, 3), (2, 1), (1, 0, 1, 2)),  # unequal strides
    (7, 8, 16, (3, 3), (1, 2), (1, 1, 1, 1)),
    (6, 6, 32, (5, 5), (1, 1), (2, 2, 2, 2)),
    (7, 7, 7, (7, 7), (1, 1), (3, 3, 3, 3)),  # 49 taps: int16 sums in two chunks
    (5, 5, 9, (1, 1), (1, 1), (0, 0, 0, 0)),
    (4, 5, 6, (2, 3), (2, 1), (1, 0, 2, 1)),
    (2, 2, 4, (3, 3), (1, 1), (2, 2, 2, 2)),  # windows wholly in the padding
    (30, 30, 1, (3, 3), (1, 1), (1, 1, 1, 1)),  # one channel, several plane tiles
    (12, 37, 9, (3, 3), (1, 1), (1, 1, 1, 1)),
    (17, 25, 12, (3, 3), (2, 2), (1, 1, 1, 1)),
]
TERM_SHAPES = [(1, 2), (2, 1), (2, 2)]  # (n_in, n_w)


def make_cases() -> list[DwTermsCase]:
    rng = np.random.default_rng(20261203)
    cases = []
    for i, shape in enumerate(SHAPES):
        for j, bits in enumerate((4, 8)):
            n_in, n_w = TERM_SHAPES[(i + j) % len(TERM_SHAPES)]
            cases.append(random_dw_terms_case(rng, f"s{i}a{bits}i{n_in}w{n_w}", bits, *shape, n_in, n_w))
    cases.append(random_dw_terms_case(rng, "one_term_a8", 8, 5, 6, 9, (3, 3), (1, 1), (1, 1, 1, 1), 1, 1))
    # the exact 64-bit requantization: shifts far below 33, up to 62, biases at the int32 bound
    for kernel, stride in (((3, 3), (1, 1)), ((3, 3), (2, 1)), ((5, 5), (1, 1))):
        tag = f"{kernel[0]}{stride[0]}{stride[1]}"
        cases.append(
            random_dw_terms_case(
                rng, f"slow_shifts_{tag}", 8, 6, 9, 12, kernel, stride, (1, 2, 1, 2), 2, 2, shifts=(8, 30)
            )
        )
        cases.append(
            random_dw_terms_case(
                rng, f"shift62_{tag}", 4, 5, 9, 16, kernel, stride, (1, 2, 1, 2), 1, 2, shifts=(58, 62)
            )
        )
        # shifts 30 .. 32: the vector paths scale the multipliers up to a shift of 32
        cases.append(
            random_dw_terms_case(
                rng, f"shift30_{tag}", 8, 5, 9, 16, kernel, stride, (1, 2, 1, 2), 2, 2, shifts=(30, 32)
            )
        )
        cases.append(
            random_dw_terms_case(
                rng,
                f"big_bias_{tag}",
                8,
                5,
                9,
                16,
                kernel,
                stride,
                (1, 2, 1, 2),
                2,
                2,
                big_bias=True,
                shifts=(30, 36),
            )
        )
        cases.append(
            random_dw_terms_case(
                rng,
                f"extreme_{tag}",
                8,
                4,
                9,
                16,
                kernel,
                stride,
                (1, 2, 1, 2),
                2,
                2,
                extreme=True,
                shifts=(38, 44),
            )
        )
    # timed: MobileNet-like (the ops harness's dw_mobilenet shape) and DS-CNN-like stride-2 layers
    for name, bits, shape, n_in in (
        ("mobilenet_a8i1w2", 8, (16, 16, 32, (3, 3), (1, 1), (1, 1, 1, 1)), 1),
        ("mobilenet_a4i2w2", 4, (16, 16, 32, (3, 3), (1, 1), (1, 1, 1, 1)), 2),
        ("dscnn_s2_a8i1w2", 8, (16, 16, 64, (3, 3), (2, 2), (0, 0, 1, 1)), 1),
        ("dscnn_8x8_a8i1w2", 8, (8, 8, 128, (3, 3), (1, 1), (1, 1, 1, 1)), 1),
    ):
        cases.append(random_dw_terms_case(rng, name, bits, *shape, n_in, 2, single=True))
    # DS-CNN's first depthwise layer as the default recipe makes it dual: shifts 30 .. 33
    cases.append(
        random_dw_terms_case(
            rng,
            "dscnn_32x32_a8i1w2",
            8,
            32,
            32,
            16,
            (3, 3),
            (1, 1),
            (1, 1, 1, 1),
            1,
            2,
            shifts=(30, 33),
            single=True,
        )
    )
    return cases


CASES = make_cases()


def scratch_formula(variant: str):
    """The generator's scratch formula (k, o) -> bytes of a terms variant."""
    return {v.function: v.scratch_bytes for v in TERMS_VARIANTS["depthwise_conv2d"]}[variant]


def write_cases_header(cases: list[DwTermsCase], path: Path) -> None:
    """``dw_terms_cases.h``: the case table, the data arrays and the buffer sizes."""
    k_o = [(c.taps * c.channels, c.channels) for c in cases]
    scratch = max(
        v.scratch_bytes(k, o)
        for k, o in k_o
        for v in (*TERMS_VARIANTS["depthwise_conv2d"], *KERNEL_VARIANTS["depthwise_conv2d"])
    )
    write_terms_header(path, cases, "tests/targets/test_kernels_dw_terms_mcu.py", scratch)


@pytest.fixture(scope="module")
def board_results(tmp_path_factory):
    """Runs the harness once per board (cached for the module's tests)."""
    cache = {}

    def get(board_name):
        if board_name not in cache:
            board = load_board(board_name)
            require_tools(board)
            out_dir = tmp_path_factory.mktemp(board_name)
            write_cases_header(CASES, out_dir / "dw_terms_cases.h")
            cache[board_name] = run_harness(
                board,
                HARNESS_SOURCES,
                [RUNTIME / "include", RUNTIME / "include" / "internal", out_dir],
                out_dir,
                "dw_terms_harness",
                timeout=240,
            )
        return cache[board_name]

    return get


def test_cases_cover_the_interesting_parameters():
    shapes = {(len(c.xs), len(c.weights)) for c in CASES}
    assert shapes == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert {c.bits for c in CASES} == {4, 8}
    assert any(len(c.xs) == 2 and c.input_zps[0] != c.input_zps[1] for c in CASES)
    assert any((c.multiplier < 0).any() for c in CASES) and any((c.multiplier == 0).any() for c in CASES)
    assert all((np.abs(c.multiplier) < TERM_MULT_LIMIT).all() for c in CASES)
    assert any((c.shift < 31).all() for c in CASES) and any((c.shift == 62).any() for c in CASES)
    assert {c.taps for c in CASES} >= {1, 6, 9, 25, 49}
    assert any(c.channels % 4 for c in CASES) and any(c.channels > 32 for c in CASES)
    assert any((np.abs(c.bias.astype(np.int64)) + 2040 * c.taps == (1 << 31) - 1).all() for c in CASES)
    # the outputs are not all clamped: the requantization really is exercised
    assert np.mean([np.unique(c.expected).size > 4 for c in CASES]) > 0.7


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_dw_terms_kernels_are_bit_exact_on_target(board_name, board_results):
    results = [r for r in board_results(board_name) if r.variant in BOARD_VARIANTS[board_name]]
    assert {r.variant for r in results} == BOARD_VARIANTS[board_name]
    assert len(results) == len(CASES) * len(BOARD_VARIANTS[board_name])
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_generator_sizes_scratch_like_the_kernels(board_name, board_results):
    cases = {c.name: c for c in CASES}
    checked = 0
    for r in board_results(board_name):
        if r.variant in ("dsp", "mve"):
            c = cases[r.case]
            formula = scratch_formula(f"q4_depthwise_conv2d_s4_terms_{r.variant}")
            assert formula(c.taps * c.channels, c.channels) == r.scratch_bytes, r
            checked += 1
    assert checked >= len(CASES)


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_dual_depthwise_costs_at_most_2_2x_single_term(board_name, board_results):
    """Dual weights (T = 2) on the timed shapes: the board's terms kernel at most 2.2x its
    single-term kernel, and at least 4x faster than the portable terms kernel."""
    arch = "mve" if board_name == "mps3-an547" else "dsp"
    ticks: dict[str, dict[str, int]] = {}
    for r in board_results(board_name):
        ticks.setdefault(r.case, {})[r.variant] = r.ticks
    for c in CASES:
        if not c.single:
            continue
        t = ticks[c.name]
        assert t[arch] * 4 < t["portable"], (c.name, t)
        if len(c.xs) == 1:
            assert t[arch] <= 2.2 * t[f"single_{arch}"], (c.name, t)


@pytest.mark.parametrize("core", sorted(CORES) + ["host-gcc", "host-clang", "cortex-m4-O0", "cortex-m55-O0"])
def test_dw_terms_sources_compile_warning_free(core):
    """Strict warnings on each core (a core without the extension builds the portable
    fallback), and builds without optimisation (the C forms of the inline-assembly loops)."""
    flags = list(STRICT_FLAGS)
    if core.endswith("-O0"):
        core = core[: -len("-O0")]
        flags = ["-O0" if f == "-O2" else f for f in flags]
    compiler = core[len("host-") :] if core.startswith("host-") else "arm-none-eabi-gcc"
    if shutil.which(compiler) is None:
        if os.environ.get("CI") and compiler != "clang":
            pytest.fail(f"CI is set but {compiler} is not on PATH")
        pytest.skip(f"{compiler} is not on PATH")
    for source in TERMS_SOURCES:
        cmd = [compiler, *CORES.get(core, []), *flags, str(source)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, f"{source.name} ({core}):\n{result.stderr}"


def small_dw_terms_model() -> QModel:
    """input (+ residual input) -> dual depthwise 3x3 (T = 4) -> dual depthwise 3x3 stride 2
    (T = 2): 4-bit activations."""
    rng = np.random.default_rng(11)
    c = 12
    x = QTensor("x", (9, 10, c), 4, 0.5, -3)
    x2 = QTensor("x_residual", (9, 10, c), 4, 0.5 / 16, 0)
    y = QTensor("y", (9, 10, c), 4, 1.0, -8)
    z = QTensor("z", (5, 5, c), 8, 1.0, 5)
    w = [rng.integers(-8, 8, (c, 3, 3)) for _ in range(2)]
    mult = rng.integers(1 << 27, TERM_MULT_LIMIT, (4, c)) * rng.choice([-1, 1], (4, c))
    dw_a = dw_terms_op(
        "dw_a",
        ["x", "x_residual"],
        w,
        rng.integers(-300, 300, c),
        mult,
        rng.integers(30, 36, c),
        (1, 1),
        (1, 1, 1, 1),
        -8,
        7,
        output="y",
    )
    v = [rng.integers(-8, 8, (c, 3, 3)) for _ in range(2)]
    dw_b = dw_terms_op(
        "dw_b",
        ["y"],
        v,
        rng.integers(-50, 50, c),
        rng.integers(1 << 27, TERM_MULT_LIMIT, (2, c)),
        np.full(c, 27),
        (2, 2),
        (1, 1, 1, 1),
        -128,
        127,
        output="z",
    )
    return QModel(
        "dw_terms_net",
        "x",
        "z",
        {t.name: t for t in (x, x2, y, z)},
        [dw_a, dw_b],
        meta={"input_residual": "x_residual", "input_layout": "NHWC"},
    )


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_generated_model_calls_the_dw_terms_variants_bit_exact(board_name, tmp_path):
    from q4sdk.targets.run import run_on_board

    board = load_board(board_name)
    require_tools(board)
    model = small_dw_terms_model()
    rng = np.random.default_rng(3)
    xq = rng.integers(-8, 8, (2, *oracle.input_shape(model))).astype(np.int8)
    run = run_on_board(model, board, xq, tmp_path, kernels="optimised")
    expected = f"q4_depthwise_conv2d_s4_terms_{'mve' if board.mve else 'dsp'}"
    assert [layer.kernel for layer in run.layers] == [expected, expected]
    assert run.ok, run.first_mismatch


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_dw_terms_kernels_are_bit_exact_unoptimised(board_name, tmp_path):
    """Built without optimisation the 3x3 paths run the C forms of their inline-assembly loops
    (the _dsp tap groups, the _mve plane filter): bit-exact on the untimed 3x3 cases too."""
    board = load_board(board_name)
    require_tools(board)
    cases = [c for c in CASES if c.taps == 9 and not c.single]
    write_cases_header(cases, tmp_path / "dw_terms_cases.h")
    results = run_harness(
        board,
        HARNESS_SOURCES,
        [RUNTIME / "include", RUNTIME / "include" / "internal", tmp_path],
        tmp_path,
        "dw_terms_harness",
        timeout=240,
        extra_cflags=["-O0"],
    )
    checked = [r for r in results if r.variant in BOARD_VARIANTS[board_name] - {"portable"}]
    assert len(checked) == len(cases) * (len(BOARD_VARIANTS[board_name]) - 1)
    bad = [r for r in results if r.mismatches or not r.guard_ok]
    assert not bad, bad


@pytest.mark.parametrize("board_name", sorted(BOARD_VARIANTS))
def test_packed_dual_depthwise_runs_the_terms_variants_in_bands(board_name, tmp_path):
    """With 4-bit activations stored two per byte, multi-term depthwise layers run the terms
    variants band by band (q4_conv_terms_band_p4), bit-exact."""
    from q4sdk.targets.run import run_on_board

    board = load_board(board_name)
    require_tools(board)
    model = small_dw_terms_model()
    xq = np.random.default_rng(5).integers(-8, 8, (2, *oracle.input_shape(model))).astype(np.int8)
    run = run_on_board(model, board, xq, tmp_path, kernels="optimised", pack_activations=True)
    assert [layer.kernel for layer in run.layers] == ["q4_conv_terms_band_p4"] * 2
    assert run.ok, run.first_mismatch
