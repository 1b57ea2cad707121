"""ResNet-8 (MLPerf Tiny) end to end on real CIFAR-10 images: quantize, generate, build, bit-exact on
500 dev images on the host, and on two images on Cortex-M7 (mps2-an500) under QEMU."""

import numpy as np
import pytest

from mcu.harness import require_tools
from q4sdk.check.verify import verify
from q4sdk.codegen.render import generate
from q4sdk.frontend.onnx_import import load_onnx
from q4sdk.ir import oracle
from q4sdk.ir.q4file import load_q4, save_q4
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe
from q4sdk.targets.boards import load_board
from q4sdk.targets.host_build import CModel
from q4sdk.targets.run import run_on_board

RECIPES = {
    "W4A8": Recipe(activation_bits=8, unsigned_activations=True, bias_correction=True),
    "W4A4": Recipe(activation_bits=4, unsigned_activations=True, bias_correction=True),
    # multi-term layers in C: dual INT4 weights on the first and last layers
    "W4A4-dual": Recipe(
        activation_bits=4, unsigned_activations=True, bias_correction=True, dual_layers=["conv_0", "fc_0"]
    ),
}


@pytest.fixture(scope="module")
def resnet8(shared_dir):
    graph = load_onnx(shared_dir / "models" / "resnet8_cifar10.onnx")
    calib = (
        np.load(shared_dir / "data" / "cifar10_calib.npz")["x"][:256].astype(np.float32).transpose(0, 3, 1, 2)
    )
    test = np.load(shared_dir / "data" / "cifar10_test.npz")
    x = test["x"][:500].astype(np.float32).transpose(0, 3, 1, 2)  # dev split
    return graph, calib, x, test["y"][:500].astype(np.int64)


@pytest.mark.slow
@pytest.mark.parametrize("config", list(RECIPES))
def test_resnet8_bit_exact_on_500_dev_images(resnet8, tmp_path, config):
    graph, calib, x, y = resnet8
    model = quantize_graph(graph, calib, RECIPES[config])
    save_q4(model, tmp_path / "r8.q4")
    model = load_q4(tmp_path / "r8.q4")
    report = generate(model, tmp_path / "gen", "resnet8")
    dual_macs = 32 * 32 * 16 * 27 + 64 * 10 if RECIPES[config].dual_layers else 0  # second INT4 tensors
    assert report.macs == 12_501_632 + dual_macs
    xq = oracle.quantize_input(model, x)
    cmodel = CModel(tmp_path / "gen")
    assert (cmodel.quantize_input(x) == xq).all()
    result = verify(model, cmodel, xq)
    assert result.samples == 500 and result.mismatches == 0, result.first_mismatch
    acc = float((cmodel.run(xq).argmax(axis=1) == y).mean())
    assert acc > 0.55  # far above chance; the accuracy targets are measured by benchmarks/


@pytest.mark.qemu
@pytest.mark.parametrize("bits", [4, 8])
def test_resnet8_bit_exact_on_cortex_m7(resnet8, tmp_path, bits):
    """W4A4 and W4A8 with the optimised kernels on mps2-an500 (Cortex-M7, DSP extension): every
    output equal to the oracle's."""
    board = load_board("mps2-an500")
    require_tools(board, for_running=True)
    graph, calib, x, _ = resnet8
    recipe = Recipe(activation_bits=bits, unsigned_activations=True, calib_samples=64)
    model = quantize_graph(graph, calib[:64], recipe)
    run = run_on_board(
        model, board, oracle.quantize_input(model, x[:2]), tmp_path, kernels="optimised", name="resnet8"
    )
    assert run.ok and run.samples == 2, run.first_mismatch
    assert run.macs == 12_501_632
    convs = [layer for layer in run.layers if layer.kind == "conv2d"]
    assert convs and all(layer.kernel.endswith("_dsp") for layer in convs)  # the M7 variants ran
