"""Residual-quantized network input (X ~ S1*(X1 - z1) + S2*X2) through the arena, the generated C
(int8 and float entry points), the firmware project and a run under QEMU, bit-exact with the oracle."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from graphs import tiny_resnet
from mcu.harness import require_tools
from q4sdk.check.verify import verify
from q4sdk.codegen.arena import plan_arena
from q4sdk.codegen.render import generate, render
from q4sdk.errors import Q4Error
from q4sdk.ir import oracle
from q4sdk.ir.qmodel import QTensor
from q4sdk.ptq.lower import residual_name
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe, preset
from q4sdk.targets.boards import load_board
from q4sdk.targets.host_build import CModel
from q4sdk.targets.project import zero_input
from q4sdk.targets.run import run_on_board
from random_models import random_model


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 1, size=(64, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def model(calib):
    m = quantize_graph(
        tiny_resnet(),
        calib,
        Recipe(activation_bits=4, unsigned_activations=True, residual_input=True, calib_samples=64),
    )
    assert m.meta["input_residual"] == residual_name(m.input)
    assert m.input_tensor.zero_point != 0  # the zero point of X1 takes part in X2
    return m


@pytest.fixture(scope="module")
def cmodel(model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("residual")
    generate(model, tmp / "gen", "res")
    return CModel(tmp / "gen", build_dir=tmp / "build")


def _random_pair(model, rng, n) -> np.ndarray:
    """Random int8 samples covering the full range of X1 and of X2."""
    t1, t2 = model.input_tensor, model.tensors[model.meta["input_residual"]]
    x1 = rng.integers(t1.qmin, t1.qmax + 1, size=(n, *t1.shape))
    x2 = rng.integers(t2.qmin, t2.qmax + 1, size=(n, *t2.shape))
    return np.stack([x1, x2], axis=1).astype(np.int8)


def test_arena_keeps_both_input_tensors_apart_until_read(model):
    plan = plan_arena(model)
    res = model.meta["input_residual"]
    first_reader = next(op for op in model.ops if res in op.inputs)
    assert first_reader.inputs == [model.input, res]
    live_together = [model.input, res, first_reader.output]
    spans = sorted((plan.offsets[t], plan.offsets[t] + model.tensors[t].size) for t in live_together)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
    assert plan.live_bytes[0] >= sum(-(-model.tensors[t].size // 16) * 16 for t in live_together)


def test_header_takes_x1_then_x2(model, cmodel):
    size = model.input_tensor.size
    assert cmodel.input_shape == oracle.input_shape(model) == (2, *model.input_tensor.shape)
    assert cmodel.input_tensor_size == size
    header = (cmodel.gen_dir / "res.h").read_text()
    for line in (
        f"#define RES_INPUT_SIZE {2 * size}",
        "#define RES_INPUT_TENSORS 2",
        f"#define RES_INPUT_TENSOR_SIZE {size}",
        "#define RES_INPUT_RESIDUAL_ZERO_POINT 0",
    ):
        assert line in header


def test_every_tensor_bit_exact_with_the_oracle(model, cmodel):
    res = verify(model, cmodel, _random_pair(model, np.random.default_rng(3), 24))
    assert res.ok, res.first_mismatch
    assert model.meta["input_residual"] in {name for name, _, _ in cmodel.dump_layout}


def test_a_wrong_residual_tensor_changes_the_output(model, cmodel):
    """X2 really reaches the first layer: zeroing it changes the C's (and the oracle's) output."""
    xq = _random_pair(model, np.random.default_rng(4), 16)
    flat = xq.copy()
    flat[:, 1] = 0
    assert (cmodel.run(xq) != cmodel.run(flat)).any()
    np.testing.assert_array_equal(cmodel.run(flat), oracle.run_oracle(model, flat))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_float_entry_point_matches_quantize_input(model, calib, layout, tmp_path):
    """X1 and X2 from the generated C equal oracle.quantize_input bit for bit: ties of both
    roundings, 0.49999997 (where floor(v + 0.5) fails), saturation of X1 and X2, NaN, +-inf, -0."""
    m = copy.deepcopy(model)
    m.meta["input_layout"] = layout
    t = m.input_tensor
    m.tensors[m.input] = QTensor(t.name, t.shape, t.bits, 0.25, t.zero_point)  # x * inv exact
    r = m.tensors[m.meta["input_residual"]]  # the residual input's scale follows: 0.25 / 2^bits
    m.tensors[r.name] = QTensor(r.name, r.shape, r.bits, 0.25 / (1 << t.bits), r.zero_point)
    generate(m, tmp_path / "gen", "res")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")

    rng = np.random.default_rng(5)
    x = calib[:40].copy() * 4 * rng.uniform(0.5, 2, size=(40, 1, 1, 1)).astype(np.float32)
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1).copy()
    # v = 4x: exact halves of X1, exact halves of the residual (multiples of 1/32), near-halves
    x[:8] = rng.integers(-40, 40, size=x[:8].shape) / np.float32(2) / 4
    x[8:16] = rng.integers(-700, 700, size=x[8:16].shape) / np.float32(32) / 4
    x[16].flat[:6] = (
        np.array([0.49999997, -0.49999997, 1.4999999, 0.53125, -0.03125, 0.46875], np.float32) / 4
    )
    x[17].flat[:6] = [np.nan, np.inf, -np.inf, 1e30, -1e30, -0.0]
    expect = oracle.quantize_input(m, x)
    np.testing.assert_array_equal(cm.quantize_input(x), expect)
    assert set(np.unique(expect[:, 1])) == set(range(-8, 8))  # X2 used its whole range
    v = (x[:16] * 4).ravel()
    assert np.count_nonzero(np.abs(v * 16 - np.trunc(v * 16)) == 0.5) > 20  # residual ties tested
    assert verify(m, cm, expect).ok


def test_single_input_rounding_is_exact_below_one_half(tmp_path):
    """The plain (one-tensor) entry point rounds 0.49999997 to 0, as the spec says."""
    m = random_model(np.random.default_rng(2), n_ops=1, kinds=("clamp",), name="plain", head=False)
    t = m.input_tensor
    assert t.size >= 4
    for name in (m.input, m.output):  # clamp keeps its input's quantization
        m.tensors[name] = QTensor(name, t.shape, t.bits, 1.0, 0)
    m.meta["input_layout"] = "NHWC"
    generate(m, tmp_path / "gen", "plain")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    x = np.zeros((1, *t.shape), np.float32)
    x.flat[:4] = [0.49999997, -0.49999997, 1.4999999, 2.5]
    q = cm.quantize_input(x)
    np.testing.assert_array_equal(q, oracle.quantize_input(m, x))
    assert q.ravel()[:4].tolist() == [0, 0, 1, 3]


def test_codegen_refuses_a_residual_tensor_of_other_bits(model):
    m = copy.deepcopy(model)
    r = m.tensors[m.meta["input_residual"]]
    m.tensors[r.name] = QTensor(r.name, r.shape, 8, r.scale, 0)
    with pytest.raises(Q4Error, match="residual input must have the input's shape and bits"):
        render(m, "res")


def test_zero_input_puts_both_tensors_at_their_zero_points(model):
    z = zero_input(model)
    assert z.shape == (1, *oracle.input_shape(model))
    assert (z[0, 0] == model.input_tensor.zero_point).all() and (z[0, 1] == 0).all()


def test_paper_preset_turns_residual_input_on_for_4_bit_activations():
    assert preset("paper", 4).residual_input and not preset("paper", 8).residual_input


def test_runs_bit_exact_on_mps2_an386(model, calib, tmp_path):
    board = load_board("mps2-an386")
    require_tools(board, for_running=True)
    xq = oracle.quantize_input(model, calib[:2])
    run = run_on_board(model, board, xq, tmp_path, name="res")
    assert run.ok and run.samples == 2
    first = next(layer for layer in run.layers if layer.op == model.ops[0].name)
    assert first.kernel == "q4_conv2d_s4_terms_dsp" and first.instructions > 0  # optimised by default
