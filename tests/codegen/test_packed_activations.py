"""Activations packed at 4 bits in the arena (``pack_activations``): bit-exact on every tensor,
about half the arena, clear errors when the model cannot be packed, and a run under QEMU.

Random W4A4 models (``test_runtime_c._Builder`` with every tensor at 4 bits) have odd channel
counts and odd sizes, so tensors end in half-used bytes and convolution runs start on either
nibble; ``tests/graphs.tiny_resnet`` goes through the real quantizer.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from q4sdk.codegen import render as codegen
from q4sdk.codegen.arena import packed_tensors
from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir.ops import OPS
from q4sdk.ir.qmodel import QModel
from q4sdk.targets.host_build import CModel
from random_models import SPATIAL_OPS, WARN_FLAGS, _Builder, assert_c_equals_oracle, random_input


class _W4A4Builder(_Builder):
    """Every tensor 4-bit, except the last one when ``output_bits`` says otherwise; multi-term
    layers only with ``multi_term`` (a .q4 file holds no second-input layers)."""

    def __init__(self, rng, shape, output_bits: int, multi_term: bool):
        self.output_bits, self.head, self.allow_multi_term = output_bits, False, multi_term
        super().__init__(rng, shape, bits=4)

    def multi_term(self, op, o, acc_scale) -> None:
        if self.allow_multi_term:
            super().multi_term(op, o, acc_scale)

    def tensor(self, shape, bits=None) -> str:
        return super().tensor(shape, self.output_bits if self.head else 4)

    def flatten_fc(self):
        self.head = True  # the fc output is the model output: the last tensor created
        super().flatten_fc()


def w4a4_model(
    seed: int, n_ops: int, kinds=SPATIAL_OPS, output_bits: int = 8, multi_term: bool = True
) -> QModel:
    """A random W4A4 chain (residual adds, multi-term layers) with an fc head."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(3, 10)), int(rng.integers(3, 10)), int(rng.choice([1, 3, 5, 7])))
    b = _W4A4Builder(rng, shape, output_bits, multi_term)
    for _ in range(n_ops):
        kind = kinds[int(rng.integers(len(kinds)))]
        {
            "conv2d": lambda: b.conv(False),
            "depthwise_conv2d": lambda: b.conv(True),
            "avgpool": lambda: b.pool("avgpool"),
            "maxpool": lambda: b.pool("maxpool"),
            "add": b.add,
            "clamp": b.clamp,
            "pad": b.pad,
        }[kind]()
    if rng.random() < 0.5:
        b.global_avgpool()
    b.flatten_fc()
    return b.model(f"p{seed}")


def _build(model: QModel, tmp_path: Path, name: str, pack: bool = True):
    report = generate(model, tmp_path / f"gen_{name}", name, pack_activations=pack)
    return report, CModel(tmp_path / f"gen_{name}", build_dir=tmp_path / "build")


def _about_half(report) -> None:
    """Packed buffers take ceil(n / 2) bytes, each rounded up to 16: about half the arena."""
    assert report.packed_activations
    assert report.arena_bytes < report.arena_bytes_unpacked
    buffers = len(report.ops) + 1
    assert report.arena_bytes <= report.arena_bytes_unpacked // 2 + 16 * buffers


# --------------------------------------------------------------------------- bit-exactness


@pytest.mark.parametrize("kind", SPATIAL_OPS)
def test_every_op_kind_packed_is_bit_exact(tmp_path, kind):
    """Many layers of one kind (and the fc head), every tensor compared unpacked with the oracle."""
    model = w4a4_model(200 + SPATIAL_OPS.index(kind), n_ops=8, kinds=(kind,))
    assert any(op.kind == kind for op in model.ops)
    report, cm = _build(model, tmp_path, f"k_{kind}")
    assert all(op.kernel.endswith("_p4") for op in report.ops if op.kind != "reshape")
    assert_c_equals_oracle(cm, model, random_input(model, np.random.default_rng(1), 24))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_w4a4_models_packed_are_bit_exact(tmp_path, seed):
    model = w4a4_model(seed, n_ops=7, output_bits=4 if seed % 2 else 8)
    assert any(t.size % 2 for t in model.tensors.values())  # a tensor ends mid-byte
    report, cm = _build(model, tmp_path, "r")
    _about_half(report)
    assert_c_equals_oracle(cm, model, random_input(model, np.random.default_rng(seed), 24))


def test_multi_term_layers_packed(tmp_path):
    """Dual weights and second (residual-quantized) inputs through the *_terms_p4 kernels."""
    model = w4a4_model(31, n_ops=10, kinds=("conv2d", "depthwise_conv2d"))
    report, cm = _build(model, tmp_path, "terms")
    kernels = {op.kernel for op in report.ops}
    assert {"q4_conv2d_s4_terms_p4", "q4_depthwise_conv2d_s4_terms_p4"} <= kernels
    assert_c_equals_oracle(cm, model, random_input(model, np.random.default_rng(2), 24))


def test_packed_and_unpacked_builds_agree(tmp_path):
    """The same model packed and unpacked: identical outputs and dumps; int8 API unchanged."""
    model = w4a4_model(5, n_ops=6)
    xq = random_input(model, np.random.default_rng(3), 16)
    _, packed = _build(model, tmp_path, "pk", pack=True)
    plain_report, plain = _build(model, tmp_path, "up", pack=False)
    out_p, dumps_p = packed.run_with_dumps(xq)
    out_u, dumps_u = plain.run_with_dumps(xq)
    np.testing.assert_array_equal(out_p, out_u)
    for name in dumps_u:
        np.testing.assert_array_equal(dumps_p[name], dumps_u[name], err_msg=name)
    assert packed.arena_size < plain.arena_size == plain_report.arena_bytes
    assert not plain_report.packed_activations
    assert plain_report.arena_bytes_unpacked == plain_report.arena_bytes
    assert not (tmp_path / "gen_up" / "q4_runtime" / "q4_packed.h").exists()


@pytest.mark.parametrize("residual_input", [False, True])
def test_quantized_tiny_resnet_w4a4_packed(tmp_path, residual_input):
    """The real quantizer (W4A4, unsigned activations, 8-bit logits; optionally the input as two
    INT4 tensors) on tests/graphs.tiny_resnet with 5 channels: every tensor bit-exact, the
    logits stay int8."""
    from graphs import tiny_resnet
    from q4sdk.ir.oracle import quantize_input
    from q4sdk.ptq.pipeline import quantize_graph
    from q4sdk.ptq.recipe import Recipe

    graph = tiny_resnet(seed=3, c=5)
    calib = np.random.default_rng(0).uniform(0, 1, size=(16, 3, 8, 8)).astype(np.float32)
    model = quantize_graph(
        graph, calib, Recipe(activation_bits=4, unsigned_activations=True, residual_input=residual_input)
    )
    assert model.output_tensor.bits == 8
    assert packed_tensors(model) == set(model.tensors) - {model.output}
    report, cm = _build(model, tmp_path, "tiny")
    _about_half(report)
    x = np.random.default_rng(4).uniform(0, 1, size=(16, 3, 8, 8)).astype(np.float32)
    assert_c_equals_oracle(cm, model, quantize_input(model, x))


# --------------------------------------------------------------------------- errors and options


def test_w4a8_with_packing_names_the_first_wide_tensor(tmp_path):
    model = w4a4_model(6, n_ops=4, kinds=("conv2d", "avgpool"))
    wide = model.ops[1].output  # a valid W4A8 model: no same-quant op touches it
    assert not any(OPS[op.kind].same_quant for op in model.ops if wide in (op.output, *op.inputs))
    t = model.tensors[wide]
    model.tensors[wide] = type(t)(t.name, t.shape, 8, t.scale, t.zero_point)
    with pytest.raises(Q4Error, match=f"tensor '{wide}' has 8-bit activations"):
        generate(model, tmp_path / "gen", "w", pack_activations=True)
    assert not (tmp_path / "gen").exists()


def test_op_kind_without_packed_kernel_is_a_generate_error(tmp_path, monkeypatch):
    model = w4a4_model(7, n_ops=6, kinds=("pad", "conv2d"))
    pad = next(op for op in model.ops if op.kind == "pad")
    monkeypatch.setitem(OPS, "pad", dataclasses.replace(OPS["pad"], packed_kernel=None))
    with pytest.raises(Q4Error, match=f"op '{pad.name}' \\(pad\\): no kernel for packed 4-bit"):
        generate(model, tmp_path / "gen", "k", pack_activations=True)
    assert not (tmp_path / "gen").exists()


@pytest.mark.parametrize("output_bits", [4, 8])
@pytest.mark.parametrize("compiler", ["gcc", "clang", "arm-none-eabi-gcc"])
def test_packed_code_compiles_warning_free(tmp_path, compiler, output_bits):
    """Release build (no dumps) and debug build, all-packed and with an int8 output."""
    from shutil import which

    if which(compiler) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {compiler} is not installed")
        pytest.skip(f"{compiler} not installed")
    model = w4a4_model(8, n_ops=8, output_bits=output_bits)
    gen = tmp_path / "gen"
    generate(model, gen, "w", pack_activations=True)
    arch = ["-mcpu=cortex-m4", "-mthumb"] if compiler.startswith("arm") else []
    sources = [gen / "w.c", gen / "w_weights.c", *sorted((gen / "q4_runtime").glob("*.c"))]
    for extra in ([], ["-DQ4_DEBUG_DUMP"]):
        for src in sources:
            res = subprocess.run(
                [compiler, *WARN_FLAGS, *arch, "-O2", *extra, "-c", str(src), "-o", str(tmp_path / "x.o")],
                capture_output=True,
                text=True,
            )
            assert res.returncode == 0, f"{src.name} {extra}: {res.stderr}"


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_packed_ops_take_band_kernels_when_optimised(board):
    """With the board's optimised kernels, packed conv and add layers call the band kernels
    (q4_band_p4.c) around the board's variants; with the portable kernels, the _p4 kernels."""
    from q4sdk.targets.boards import load_board

    model = w4a4_model(10, n_ops=6, kinds=("conv2d", "add"), multi_term=False)
    files, report = codegen.render(
        model, "o", target=load_board(board), kernels="optimised", pack_activations=True
    )
    kernels = {op.kind: op.kernel for op in report.ops}
    assert kernels["conv2d"] == "q4_conv_band_p4" and kernels["add"] == "q4_add_table_p4"
    variant = "q4_conv2d_s4_mve" if board == "mps3-an547" else "q4_conv2d_s4_a4_dsp"
    assert f"scratch, {variant}, " in files["o.c"]
    assert report.scratch_bytes > 0
    _, portable = codegen.render(
        model, "o", target=load_board(board), kernels="portable", pack_activations=True
    )
    assert all(op.kernel.endswith("_p4") for op in portable.ops if op.kind != "reshape")
    assert portable.scratch_bytes == 0


def sanitized_run_equals_oracle(model, tmp_path, n_samples: int, **generate_args) -> None:
    """Generate ``model`` (name ``san``) with ``generate_args``, build it with gcc under ASan +
    UBSan, run ``n_samples`` random inputs through it and compare every output with the oracle."""
    from shutil import which

    from q4sdk.ir.oracle import run_oracle

    if which("gcc") is None:
        pytest.skip("gcc not installed")
    gen = tmp_path / "san"
    generate(model, gen, "san", **generate_args)
    xq = random_input(model, np.random.default_rng(5), n_samples)
    (tmp_path / "in.bin").write_bytes(xq.tobytes())
    (gen / "main_test.c").write_text(
        '#include <stdio.h>\n#include "san.h"\n'
        "int main(int argc, char **argv)\n{\n"
        "    int8_t x[SAN_INPUT_SIZE], y[SAN_OUTPUT_SIZE];\n"
        '    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");\n'
        "    (void)argc;\n"
        "    while (fread(x, 1, sizeof x, in) == sizeof x) {\n"
        "        san_run(x, y);\n        fwrite(y, 1, sizeof y, out);\n    }\n"
        "    fclose(in);\n    fclose(out);\n    return 0;\n}\n"
    )
    sources = [
        gen / "san.c",
        gen / "san_weights.c",
        gen / "main_test.c",
        *sorted((gen / "q4_runtime").glob("*.c")),
    ]
    subprocess.run(
        [
            "gcc",
            *WARN_FLAGS,
            "-g",
            "-O1",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            *map(str, sources),
            "-o",
            str(tmp_path / "exe"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    res = subprocess.run(
        [str(tmp_path / "exe"), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    out = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8).reshape(len(xq), -1)
    np.testing.assert_array_equal(out, run_oracle(model, xq).reshape(len(xq), -1))


def test_packed_model_under_sanitizers(tmp_path):
    """ASan + UBSan: nibble stores stay inside their tensors' bytes of the static arena (odd sizes,
    multi-term layers), and the release build (no dumps) gives the oracle's outputs."""
    sanitized_run_equals_oracle(w4a4_model(12, n_ops=8, output_bits=4), tmp_path, 16, pack_activations=True)


def test_cli_generate_prints_both_arena_sizes(tmp_path, capsys):
    from q4sdk.cli import main
    from q4sdk.ir.q4file import save_q4

    model = w4a4_model(9, n_ops=4, multi_term=False)
    save_q4(model, tmp_path / "m.q4")
    assert (
        main(
            [
                "generate",
                str(tmp_path / "m.q4"),
                "-o",
                str(tmp_path / "gen"),
                "--name",
                "m",
                "--pack-activations",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    report = codegen.render(model, "m", pack_activations=True)[1]
    assert (
        f"{report.arena_bytes:,} bytes (packed 4-bit; {report.arena_bytes_unpacked:,} bytes unpacked)"
    ) in out
    assert '#include "q4_runtime/q4_packed.h"' in (tmp_path / "gen" / "m.c").read_text()


# --------------------------------------------------------------------------- on the target


def test_resnet8_w4a4_packed_under_qemu(shared_dir, tmp_path):
    """ResNet-8 W4A4 quantized here, packed, on mps2-an386 (Cortex-M4) under QEMU: outputs
    bit-exact with the oracle and about half the arena of the unpacked build."""
    from q4sdk.api import quantize
    from q4sdk.ir.oracle import quantize_input
    from q4sdk.targets.boards import load_board
    from q4sdk.targets.firmware import toolchain_available
    from q4sdk.targets.run import format_target_run, run_on_board

    board = load_board("mps2-an386")
    ok, reason = toolchain_available(board, for_running=True)
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    to_nchw = lambda x: x.transpose(0, 3, 1, 2).astype(np.float32)  # noqa: E731
    calib = np.load(shared_dir / "data" / "cifar10_calib.npz")["x"][:32]
    test = np.load(shared_dir / "data" / "cifar10_test.npz")["x"][:2]
    model = quantize(
        str(shared_dir / "models" / "resnet8_cifar10.onnx"),
        to_nchw(calib),
        activations=4,
        unsigned_activations=True,
    )
    run = run_on_board(model, board, quantize_input(model, to_nchw(test)), tmp_path, pack_activations=True)
    assert run.ok, format_target_run(run)
    assert run.ram["arena"] <= run.ram["arena_unpacked"] // 2 + 16 * len(model.ops)
    assert "packed 4-bit" in format_target_run(run)
