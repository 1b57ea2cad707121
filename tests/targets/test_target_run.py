"""Firmware projects on real targets: bit-exact runs under QEMU with per-layer profiles, builds
for the build-only boards, the generate-time fit check, the Makefile, and the CLI commands.

Tests that need a cross compiler or QEMU skip without them, and fail instead when CI is set.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from mcu.harness import require_tools
from q4sdk.cli import build_parser
from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import run_oracle
from q4sdk.ir.q4file import save_q4
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.targets.boards import MemoryRegion, load_board
from q4sdk.targets.firmware import build_firmware, size_of
from q4sdk.targets.project import EXTRA_CFLAGS, write_firmware_project
from q4sdk.targets.run import run_on_board
from random_models import random_input, random_model

QEMU_BOARDS = ("mps2-an386", "mps2-an500", "mps3-an547", "rv32imc", "microbit", "microbit-264k")
BUILD_ONLY_BOARDS = ("stm32f746", "nrf52840", "rp2040")


@pytest.fixture(scope="module")
def model() -> QModel:
    # seed 7: pad, pools, clamps, single- and multi-term conv2d, global avgpool and an fc head
    return random_model(np.random.default_rng(7), n_ops=8, name="target model")


@pytest.fixture(scope="module")
def inputs(model) -> np.ndarray:
    return random_input(model, np.random.default_rng(1), 3)


def _big_fc_model(inputs: int, outputs: int) -> QModel:
    """One fully connected layer with inputs * outputs INT4 weights (inputs * outputs / 2 bytes)."""
    tensors = {"x": QTensor("x", (inputs,), 8, 0.1, 0), "y": QTensor("y", (outputs,), 8, 0.1, 0)}
    op = QOp(
        "fc",
        "fully_connected",
        ["x"],
        "y",
        {"act_min": -128, "act_max": 127},
        {
            "weight": np.ones((outputs, inputs), np.int8),
            "bias": np.zeros(outputs, np.int32),
            "multiplier": np.full(outputs, 1 << 30, np.int32),
            "shift": np.full(outputs, 40, np.int32),
        },
    )
    return QModel("big", "x", "y", tensors, [op], {"input_layout": "NHWC"})


# --------------------------------------------------------------------------- on QEMU


@pytest.mark.parametrize("board_name", QEMU_BOARDS)
def test_model_runs_bit_exact_with_a_layer_profile(board_name, model, inputs, tmp_path):
    board = load_board(board_name)
    require_tools(board, for_running=True)
    run = run_on_board(model, board, inputs, tmp_path)
    assert run.ok and run.first_mismatch is None and run.samples == len(inputs)
    assert [layer.op for layer in run.layers] == [op.name for op in model.ops]
    # every op that computes something takes time; the layers add up to the inference
    assert all(layer.instructions > 0 for layer in run.layers if layer.kind != "reshape")
    layer_sum = sum(layer.instructions for layer in run.layers)
    assert 0.8 * run.instructions <= layer_sum <= run.instructions
    assert run.instructions == pytest.approx(run.ticks * board.timer.instructions_per_tick)
    conv = next(layer for layer in run.layers if layer.kind == "conv2d")
    assert conv.macs > 0 and 1 < conv.instructions_per_mac < 1000
    assert run.macs == sum(layer.macs for layer in run.layers)
    assert run.flash["rodata"] >= run.flash["weights"] > 0
    assert run.ram["static"] >= run.ram["arena"] > 0
    assert 0 < run.ram["stack_used"] < run.ram["stack_reserved"] == board.stack_size
    data = json.loads(json.dumps(run.to_dict()))
    assert data["bit_exact"] and len(data["layers"]) == len(model.ops)


def test_a_wrong_expected_output_is_reported(model, inputs, tmp_path):
    """The host compares every output: corrupt one expected value and the run must say where."""
    from q4sdk.targets.firmware import run_firmware
    from q4sdk.targets.run import read_run

    board = load_board("mps2-an386")
    require_tools(board, for_running=True)
    project = write_firmware_project(model, tmp_path / "p", board, "net", inputs)
    elf = build_firmware(
        board, project.sources, project.include_dirs, tmp_path / "b", extra_cflags=EXTRA_CFLAGS
    )
    result = run_firmware(board, elf)
    project.expected = project.expected.copy()
    project.expected[1].flat[0] ^= 1
    run = read_run(project, result, elf)
    assert not run.ok and run.mismatched_samples == 1
    assert (run.first_mismatch.sample, run.first_mismatch.index) == (1, 0)
    assert run.first_mismatch.target == run_oracle(model, inputs)[1].flat[0]


def test_run_refuses_a_build_only_board(model, inputs, tmp_path):
    with pytest.raises(Q4Error, match="rp2040 is build-only"):
        run_on_board(model, load_board("rp2040"), inputs, tmp_path)
    assert not (tmp_path / "project").exists()


# --------------------------------------------------------------------------- builds


@pytest.mark.parametrize("board_name", BUILD_ONLY_BOARDS)
def test_build_only_boards_compile_the_project(board_name, model, tmp_path):
    board = load_board(board_name)
    require_tools(board, for_running=False)
    project = write_firmware_project(model, tmp_path / "p", board, "net")  # one zero input
    assert project.samples == 1
    elf = build_firmware(
        board, project.sources, project.include_dirs, tmp_path / "b", extra_cflags=EXTRA_CFLAGS
    )
    sizes = size_of(elf)
    assert sizes["rodata"] >= project.report.weight_bytes
    # the estimate is on the safe side of the linked figure
    assert sizes["text"] + sizes["rodata"] + sizes["data"] <= project.fit.flash_bytes


def test_rp2040_builds_with_the_armv6m_kernels(model, tmp_path):
    """The build-only Cortex-M0+ board takes the ARMv6-M kernels when optimised ones are asked."""
    board = load_board("rp2040")
    require_tools(board, for_running=False)
    project = write_firmware_project(model, tmp_path / "p", board, "net", kernels="optimised")
    conv = {op.kernel for op in project.report.ops if op.kind == "conv2d"}
    armv6m = {"q4_conv2d_s4_armv6m", "q4_conv2d_s4_a4_armv6m"}  # 8- and 4-bit inputs
    assert conv & armv6m and conv <= armv6m | {"q4_conv2d_s4_terms"}  # multi-term: portable
    elf = build_firmware(
        board, project.sources, project.include_dirs, tmp_path / "b", extra_cflags=EXTRA_CFLAGS
    )
    assert size_of(elf)["text"] > 0


def test_makefile_builds_the_project(model, inputs, tmp_path):
    board = load_board("mps2-an386")
    require_tools(board, for_running=True)
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    out = tmp_path / "fw"
    write_firmware_project(model, out, board, "net", inputs)
    assert {"main.c", "Makefile", "CMakeLists.txt", "board", "model"} <= {p.name for p in out.iterdir()}
    res = subprocess.run(["make", "-C", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    run = subprocess.run(["make", "-s", "-C", str(out), "run"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "@q4 mismatched_samples 0" in run.stdout
    outputs = [line.split()[2] for line in run.stdout.splitlines() if line.startswith("@q4 output ")]
    assert outputs == [bytes(o.astype(np.uint8)).hex() for o in run_oracle(model, inputs)]


# --------------------------------------------------------------------------- fit check


def test_fit_check_rejects_a_model_too_big_for_flash(tmp_path):
    board = load_board("rp2040")  # 2 MB flash: 4.5 MB of INT4 weights cannot fit
    with pytest.raises(
        Q4Error,
        match=r"does not fit board rp2040: needs [\d,.]+ KB flash .* "
        r"board has 2,047\.8 KB",
    ):
        write_firmware_project(_big_fc_model(3000, 3000), tmp_path / "fw", board, "big")
    assert not (tmp_path / "fw").exists()


def test_fit_check_rejects_a_model_too_big_for_ram(tmp_path):
    board = load_board("nrf52840")
    small_ram = replace(board, ram=MemoryRegion(board.ram.origin, 16 * 1024), stack_size=4096)
    model = _big_fc_model(16 * 1024, 2)  # 16 KB input tensor in the arena
    with pytest.raises(Q4Error, match=r"needs [\d,.]+ KB RAM \(arena 16\.\d KB .*board has 16\.0 KB"):
        write_firmware_project(model, tmp_path / "fw", small_ram, "big")
    assert not (tmp_path / "fw").exists()
    write_firmware_project(model, tmp_path / "fw", board, "big")  # the real board has 256 KB


# --------------------------------------------------------------------------- codegen hooks


def test_profile_hooks_are_empty_by_default(model, tmp_path):
    report = generate(model, tmp_path / "g", "net")
    source = (tmp_path / "g" / "net.c").read_text()
    assert source.count("\n    Q4_PROFILE_BEGIN(") == source.count("\n    Q4_PROFILE_END(") == len(model.ops)
    assert "#define Q4_PROFILE_BEGIN(op) ((void)0)" in source
    assert "#include <string.h>" not in source  # builds without a C library (rv32imc)
    assert f"#define NET_OP_COUNT {len(model.ops)}\n" in (tmp_path / "g" / "net.h").read_text()
    assert all(op.kernel.startswith("q4_") for op in report.ops if op.kind != "reshape")


def test_optimised_kernels_need_a_board_with_the_extension(model, tmp_path):
    conv = [
        op
        for op in generate(model, tmp_path / "a", "net", target=load_board("rp2040"), kernels="optimised").ops
        if op.kind == "conv2d"
    ]
    assert conv and all(not op.kernel.endswith(("_dsp", "_mve")) for op in conv)
    with pytest.raises(Q4Error, match="kernels must be one of"):
        generate(model, tmp_path / "b", "net", kernels="fast")


# --------------------------------------------------------------------------- command line


def _cli(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def test_cli_boards_lists_every_board(capsys):
    assert _cli(["boards"]) == 0
    out = capsys.readouterr().out
    for name in (*QEMU_BOARDS, *BUILD_ONLY_BOARDS, "host"):
        assert name in out
    assert "build-only" in out and "QEMU mps3-an547" in out and "QEMU virt" in out
    microbit = next(line for line in out.splitlines() if line.startswith("microbit "))
    assert "armv6m" in microbit and "62.5 instr" in microbit


def test_cli_run_and_generate(model, inputs, tmp_path, capsys):
    board = load_board("mps3-an547")
    require_tools(board, for_running=True)
    q4 = tmp_path / "m.q4"
    save_q4(model, q4)
    data = tmp_path / "x.npy"
    np.save(data, inputs.astype(np.float32) * np.float32(model.input_tensor.scale))
    report = tmp_path / "run.json"
    assert (
        _cli(
            [
                "run",
                str(q4),
                "--board",
                board.name,
                "--data",
                str(data),
                "--count",
                "2",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "bit-exact" in out and "instructions / MAC" in out
    assert json.loads(report.read_text())["samples"] == 2
    with pytest.raises(Q4Error, match="build-only"):
        _cli(["run", str(q4), "--board", "stm32f746", "--data", str(data)])
    assert _cli(["generate", str(q4), "-o", str(tmp_path / "fw"), "--board", "stm32f746"]) == 0
    assert "flash ~" in capsys.readouterr().out
    assert (tmp_path / "fw" / "model" / "target_model.c").is_file()
