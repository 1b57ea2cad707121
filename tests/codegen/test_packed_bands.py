"""The packed band kernels (``runtime_c/src/basic/q4_band_p4.c``, ``q4_add_table_p4.c``) on the host.

``tests/mcu/band_harness.c`` runs a band kernel around the portable int8 kernel (standing in for
an optimised variant that uses all of its scratch) and the portable packed kernel on the same
random layer: outputs must agree byte for byte, and nothing may be written past the scratch the
generator's formula (``q4sdk.codegen.arena.band_staging_bytes``) sizes, which must equal the C
``*_get_buffer_size``. Random W4A4 models generated for a board with optimised kernels then run
the band kernels end to end (their variants compile to the portable fallbacks on the host),
bit-exact with the oracle on every tensor, also under ASan/UBSan.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from shutil import which

import numpy as np
import pytest
from test_packed_activations import sanitized_run_equals_oracle, w4a4_model

from q4sdk.codegen.arena import BAND_STAGING_FLOOR, band_floor, band_rows, band_staging_bytes, plan_bands
from q4sdk.codegen.render import generate
from q4sdk.ir.ops import OPS
from q4sdk.resources import RUNTIME_DIR
from q4sdk.targets.boards import load_board
from q4sdk.targets.host_build import CModel
from random_models import WARN_FLAGS, assert_c_equals_oracle, random_input

HARNESS = Path(__file__).resolve().parents[1] / "mcu" / "band_harness.c"
NO_LEAK_CHECK = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}  # the harness exits without freeing
BAND_KERNELS = {"q4_conv_band_p4", "q4_conv_terms_band_p4", "q4_fc_band_p4", "q4_add_table_p4"}


def test_band_kernels_in_the_op_table_exist():
    """Every packed band kernel of the op table: its source exists, its function is declared in
    q4_packed.h, and a kernel that wraps a variant belongs to a kind that has variants."""
    header = (RUNTIME_DIR / "include" / "q4_packed.h").read_text()
    seen = set()
    for spec in OPS.values():
        for band, variants in (
            (spec.packed_band, spec.variants),
            (spec.packed_band_terms, spec.terms_variants),
        ):
            if band is None:
                continue
            seen.add(band.function)
            assert (RUNTIME_DIR / "src" / band.source).is_file(), band
            assert f"void {band.function}(" in header, band
            assert variants, (spec.kind, band)
            assert band.wraps_variant or band.scratch_bytes > 0, band
    assert seen == BAND_KERNELS


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    if which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = tmp_path_factory.mktemp("band") / "band_harness"
    src = RUNTIME_DIR / "src"
    sources = [
        HARNESS,
        src / "basic" / "q4_band_p4.c",
        *(src / "convolution" / f for f in ("q4_conv2d_s4.c", "q4_depthwise_conv2d_s4.c")),
        *(src / "convolution" / f for f in ("q4_conv2d_s4_p4.c", "q4_depthwise_conv2d_s4_p4.c")),
        *(src / "convolution" / f for f in ("q4_conv2d_s4_terms.c", "q4_conv2d_s4_terms_p4.c")),
        *(src / "fully_connected" / f for f in ("q4_fully_connected_s4.c", "q4_fully_connected_s4_p4.c")),
    ]
    subprocess.run(
        [
            "gcc",
            *WARN_FLAGS,
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-I",
            str(RUNTIME_DIR / "include"),
            *map(str, sources),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return exe


# kind, (H, W, C), (KH, KW), (SH, SW), (PT, PL), O, rows, n_inputs, in_bits, out_bits
CASES = [
    (0, (9, 7, 3), (3, 3), (1, 1), (1, 1), 5, 2, 1, 4, 4),  # odd rows: bands start mid-byte
    (0, (9, 7, 3), (3, 3), (1, 1), (1, 1), 5, 1, 1, 4, 8),  # int8 output written in place
    (0, (8, 8, 4), (3, 3), (2, 2), (1, 1), 6, 3, 1, 4, 4),
    (0, (8, 8, 4), (1, 1), (2, 2), (0, 0), 7, 2, 1, 4, 4),  # 1x1 stride 2: rows skipped
    (0, (5, 6, 2), (5, 3), (1, 2), (2, 1), 3, 4, 1, 4, 4),  # tall kernel, pads
    (0, (6, 6, 3), (3, 3), (1, 1), (0, 0), 4, 7, 1, 8, 4),  # int8 input, band > output rows
    (0, (7, 5, 3), (3, 3), (1, 1), (1, 1), 5, 3, 2, 4, 4),  # multi-term: two inputs, dual
    (0, (7, 5, 1), (3, 3), (2, 1), (1, 1), 3, 1, 2, 4, 8),
    (1, (9, 9, 5), (3, 3), (1, 1), (1, 1), 0, 2, 1, 4, 4),  # depthwise
    (1, (9, 9, 5), (3, 3), (2, 2), (1, 1), 0, 3, 1, 4, 4),
    (1, (6, 7, 3), (5, 5), (1, 1), (2, 2), 0, 1, 1, 4, 4),
    (2, (1, 1, 37), (1, 1), (1, 1), (0, 0), 9, 1, 1, 4, 4),  # fc, odd sizes
    (2, (1, 1, 64), (1, 1), (1, 1), (0, 0), 10, 1, 1, 4, 8),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_band_kernel_bit_exact_within_formula_scratch(harness, case):
    kind, (h, w, c), (kh, kw), (sh, sw), (pt, pl), o, rows, n_in, in_bits, out_bits = case
    for kernel_scratch, seed in ((0, 1), (48, 2)):
        args = [kind, h, w, c, kh, kw, sh, sw, pt, pl, o, rows, n_in, in_bits, out_bits, kernel_scratch, seed]
        res = subprocess.run(
            [str(harness), *map(str, args)], capture_output=True, text=True, env=NO_LEAK_CHECK
        )
        assert res.returncode == 0 and res.stdout.endswith("ok\n"), res.stdout + res.stderr
        staging = int(res.stdout.split()[1])
        if kind == 2:
            expected = (c if in_bits == 4 else 0) + (o if out_bits == 4 else 0)
        else:
            ho = (h + 2 * pt - kh) // sh + 1
            wo = (w + 2 * pl - kw) // sw + 1
            out_c = c if kind == 1 else o
            expected = band_staging_bytes(
                (h, w, c), kh, sh, (ho, wo, out_c), n_in if in_bits == 4 else 0, out_bits == 4, rows
            )
        assert staging == expected


def test_band_rows_fill_the_shared_scratch():
    """Each layer's bands take what the largest scratch leaves; the total is not raised past what
    the floor needs, and a layer never gets more rows than its output has."""
    a = (1000, lambda r: 600 * r + 1200, 32)  # a layer whose rows cost 600 bytes
    b = (9000, lambda r: 100 * r, 4)  # the largest kernel scratch
    rows = plan_bands([a, b])
    assert rows[1] == 4
    total = max(k + s(r) for (k, s, _), r in zip([a, b], rows))
    assert total == max(9000 + 400, 1000 + 600 * rows[0] + 1200)
    assert 1000 + 600 * (rows[0] + 1) + 1200 > total  # no room for one more row
    assert band_rows(lambda r: 10**6, 5, 100) == 1
    # on a small part the floor shrinks with its RAM: a single layer gets fewer rows
    assert band_floor(None) == BAND_STAGING_FLOOR and band_floor(16384) == 1024
    only = [(0, lambda r: 600 * r + 1200, 32)]
    assert plan_bands(only, floor=band_floor(16384)) == [1]
    assert plan_bands(only) == [(BAND_STAGING_FLOOR - 1200) // 600]


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_models_through_band_kernels_bit_exact(tmp_path, board, seed):
    """W4A4 chains with residual adds, multi-term layers, odd shapes: every layer with a variant
    runs its band kernel, every tensor equals the oracle's."""
    model = w4a4_model(40 + seed, n_ops=8, output_bits=4 if seed % 2 else 8)
    gen = tmp_path / "gen"
    report = generate(model, gen, "b", target=load_board(board), kernels="optimised", pack_activations=True)
    used = {op.kernel for op in report.ops}
    assert used & BAND_KERNELS, used
    assert report.scratch_bytes > 0
    cm = CModel(gen, build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, np.random.default_rng(seed), 16))


def test_band_kernels_under_sanitizers(tmp_path):
    """ASan/UBSan on a whole generated model: the bands stay inside the static scratch."""
    model = w4a4_model(12, n_ops=8, output_bits=4)
    sanitized_run_equals_oracle(
        model, tmp_path, 8, target=load_board("mps2-an386"), kernels="optimised", pack_activations=True
    )
