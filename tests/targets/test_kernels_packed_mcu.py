"""Packed 4-bit activations through the optimised kernels (q4_band_p4.c, q4_add_table_p4.c) on
their boards, under QEMU.

A random W4A4 chain (conv2d and depthwise layers with random windows, strides, asymmetric pads and
odd channel counts, multi-term layers, residual adds, an fc head; rows long enough for the
16-byte Helium loops of the unpack, pack and add-table paths, and odd so that bands start
mid-byte) is generated with ``pack_activations`` for ``mps2-an386`` (Cortex-M4: the band kernels
around ``_dsp`` / ``_a4_dsp`` / ``_terms_dsp``) and ``mps3-an547`` (Cortex-M55: around ``_mve``) and
run by ``run_on_board``: every output equals the oracle's, and the band kernels are the ones
called. Tests skip when the Arm toolchain or QEMU is missing, and fail instead when CI is set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codegen.test_packed_activations import _W4A4Builder  # noqa: E402
from mcu.harness import require_tools  # noqa: E402
from q4sdk.ir import oracle  # noqa: E402
from q4sdk.targets.boards import load_board  # noqa: E402

BAND_KERNELS = {"q4_conv_band_p4", "q4_conv_terms_band_p4", "q4_fc_band_p4", "q4_add_table_p4"}


def packed_chain(seed: int, output_bits: int):
    rng = np.random.default_rng(seed)
    b = _W4A4Builder(rng, (11, 15, 7), output_bits, multi_term=True)
    for step in ("conv", "dw", "add", "conv", "dw", "add", "conv"):
        {"conv": lambda: b.conv(False), "dw": lambda: b.conv(True), "add": b.add}[step]()
    b.flatten_fc()
    return b.model(f"band{seed}")


@pytest.mark.parametrize("board_name", ["mps2-an386", "mps3-an547"])
def test_packed_chain_through_band_kernels_bit_exact(board_name, tmp_path):
    from q4sdk.targets.run import format_target_run, run_on_board

    board = load_board(board_name)
    require_tools(board)
    used = set()
    for seed, output_bits in ((2, 8), (6, 4)):
        model = packed_chain(seed, output_bits)
        xq = np.random.default_rng(seed).integers(-8, 8, (2, *oracle.input_shape(model))).astype(np.int8)
        run = run_on_board(model, board, xq, tmp_path / f"s{seed}", pack_activations=True)
        assert run.ok, format_target_run(run)
        used |= {layer.kernel for layer in run.layers}
    assert BAND_KERNELS <= used, used
