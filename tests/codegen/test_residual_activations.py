"""Residual quantization of internal activations (x ~ S1*(X1 - z1) + S2*X2, Choukroun et al. 2019):
the lossless split of the 8-bit fine-grid tensor, the quantizer's lowering, the .q4 checks, and the
generated C (int8 and packed arenas, sanitizers), bit-exact with the oracle."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest

from graphs import tiny_resnet
from q4sdk.check.verify import verify
from q4sdk.codegen.arena import packed_tensors
from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir import oracle
from q4sdk.ir.float_exec import run_float
from q4sdk.ir.q4file import load_q4, save_q4
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.ir.validate import validate_model
from q4sdk.ptq.lower import coarse_zero_point, fine_zero_point
from q4sdk.ptq.pipeline import quantize_graph
from q4sdk.ptq.recipe import Recipe, preset
from q4sdk.targets.host_build import CModel
from random_models import sanitized_outputs

RESIDUAL = ["r1", "r2", "r3", "v1", "@last_input"]


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 1, size=(64, 3, 8, 8)).astype(np.float32)


def _recipe(residual_activations, **kw) -> Recipe:
    return Recipe(
        activation_bits=4,
        unsigned_activations=True,
        calib_samples=64,
        residual_activations=residual_activations,
        **kw,
    )


@pytest.fixture(scope="module")
def model(calib) -> QModel:
    return quantize_graph(tiny_resnet(), calib, _recipe(RESIDUAL))


@pytest.mark.parametrize("z1", range(-8, 8))
def test_split_of_every_fine_code_is_lossless(z1):
    """With the quantizer's z_F, every int8 F splits into (X1, X2) with S_F*(F - z_F) =
    16*S_F*(X1 - z1) + S_F*X2 exactly, neither clamp acting."""
    zf = fine_zero_point(z1, 4)
    assert coarse_zero_point(zf, 4) == z1
    f_t = QTensor("f", (256,), 8, 0.01, zf)
    f = np.arange(-128, 128, dtype=np.int8)
    parts = []
    for part, zp in ((0, z1), (1, 0)):
        op = QOp("s", "residual_split", ["f"], "o", {"part": part, "coarse_zero_point": z1}, {})
        parts.append(oracle.residual_split(f, op, f_t, QTensor("o", (256,), 4, 1.0, zp)).astype(int))
    x1, x2 = parts
    assert x1.min() >= -8 and x1.max() <= 7 and x2.min() >= -8 and x2.max() <= 7
    np.testing.assert_array_equal(16 * (x1 - z1) + x2, f.astype(int) - zf)
    assert len(set(zip(x1.tolist(), x2.tolist()))) == 256  # one code per pair: nothing lost


def test_lowering_splits_each_tensor_before_its_weighted_readers(model):
    assert model.meta["residual_activations"] == ["r1", "r2", "r3", "v1", "c2"]  # @last_input -> c2
    kinds = {op.name: op for op in model.ops}
    # a weighted reader takes (X1, X2); the add reads the fine tensor r1 itself
    assert kinds["dw"].inputs == ["r1__coarse", "r1__residual"]
    assert kinds["fc"].inputs == ["f1__coarse", "f1__residual"]  # after the flatten of c2
    assert kinds["add"].inputs == ["p1", "r1"]
    assert kinds["ap"].inputs == ["m1"] and model.tensors["m1"].bits == 8  # maxpool keeps r3's grid
    for name in ("r1", "r2", "v1", "f1"):
        f, x1, x2 = (model.tensors[n] for n in (name, f"{name}__coarse", f"{name}__residual"))
        assert f.bits == 8 and x1.bits == x2.bits == 4
        assert x1.scale == 16 * f.scale and x2.scale == f.scale and x2.zero_point == 0
        assert f.zero_point == fine_zero_point(x1.zero_point, 4)
        order = [op.output for op in model.ops]
        assert order.index(f"{name}__coarse") < order.index(f"{name}__residual")
    assert all(
        t.bits == 4
        for n, t in model.tensors.items()
        if n not in ("r1", "r2", "r3", "m1", "v1", "c2", "f1", model.output)
    )


def test_residual_activations_lower_the_output_error(calib):
    """Same recipe with and without residual activations: the integer model's logits move closer
    to the float model's on the calibration inputs."""
    graph = tiny_resnet()
    ref = run_float(graph, calib)

    def err(m):
        out = oracle.dequantize_output(m, oracle.run_oracle(m, oracle.quantize_input(m, calib)))
        return float(((out - ref) ** 2).mean())

    plain = quantize_graph(graph, calib, _recipe([]))
    residual = quantize_graph(graph, calib, _recipe(RESIDUAL))
    assert err(residual) < 0.7 * err(plain)


def test_refinement_keeps_the_split_consistent(calib):
    m = quantize_graph(tiny_resnet(), calib, _recipe(["@last_input"], refine_iters=20, refine_lr=1e-2))
    assert m.meta["refine"]["applied"]
    validate_model(m)  # the X1 / X2 scales follow the refined fine scale
    assert m.tensors["f1__coarse"].scale == 16 * m.tensors["f1"].scale


def test_q4_file_round_trip_and_checks(model, tmp_path):
    save_q4(model, tmp_path / "m.q4")
    back = load_q4(tmp_path / "m.q4")
    xq = oracle.quantize_input(model, np.random.default_rng(1).normal(0, 1, (8, 3, 8, 8)))
    np.testing.assert_array_equal(oracle.run_oracle(back, xq), oracle.run_oracle(model, xq))
    bad = copy.deepcopy(model)
    op = next(o for o in bad.ops if o.name == "r2__residual")
    op.attrs["part"] = 2
    with pytest.raises(Q4Error, match=r"op 'r2__residual' \(residual_split\): attr 'part'"):
        validate_model(bad)
    bad = copy.deepcopy(model)
    bad.tensors["r2__coarse"].scale *= 2
    with pytest.raises(Q4Error, match="'r2__coarse' must have scale"):
        validate_model(bad)
    bad = copy.deepcopy(model)  # a weighted layer may read two tensors only as a split pair
    next(o for o in bad.ops if o.name == "pw").inputs = ["r2__residual", "r2__coarse"]
    with pytest.raises(Q4Error, match=r"op 'pw' \(conv2d\): needs 1 input"):
        validate_model(bad)


@pytest.mark.parametrize("packed", [False, True])
def test_generated_c_is_bit_exact(model, tmp_path, packed):
    generate(model, tmp_path / "gen", "ra", pack_activations=packed)
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    t = model.input_tensor
    xq = np.random.default_rng(2).integers(t.qmin, t.qmax + 1, (24, *t.shape)).astype(np.int8)
    res = verify(model, cm, xq)
    assert res.ok, res.first_mismatch
    src = (tmp_path / "gen" / "ra.c").read_text()
    assert src.count("q4_residual_split_" + ("p4" if packed else "s8") + "(&params") == 8


def test_packing_keeps_fine_tensors_at_a_byte(model):
    packed = packed_tensors(model)
    assert not packed & {"r1", "r2", "r3", "m1", "v1", "c2", "f1"}
    assert {"r1__coarse", "r1__residual", "p1", "x"} <= packed


@pytest.mark.parametrize("zf,z1", [(-128, 7), (127, -8), (0, 0), (-5, 3)])
def test_c_split_saturates_like_the_oracle_for_any_zero_points(tmp_path, zf, z1):
    """A hand-made .q4 whose zero points are not the lossless pair: the clamps act, and C and the
    oracle still agree on all 256 codes (under ASan/UBSan)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    tensors = {
        "f": QTensor("f", (1, 1, 256), 8, 0.01, zf),
        "x1": QTensor("x1", (1, 1, 256), 4, 0.16, z1),
        "x2": QTensor("x2", (1, 1, 256), 4, 0.01, 0),
    }
    ops = [
        QOp("x1", "residual_split", ["f"], "x1", {"part": 0, "coarse_zero_point": z1}, {}),
        QOp("x2", "residual_split", ["f"], "x2", {"part": 1, "coarse_zero_point": z1}, {}),
    ]
    for out in ("x1", "x2"):
        m = QModel(
            "split",
            "f",
            out,
            {k: v for k, v in tensors.items() if k in ("f", "x1", out)},
            ops[:1] if out == "x1" else ops,
            {"input_layout": "NHWC"},
        )
        validate_model(m)
        xq = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 1, 256)
        out_c = sanitized_outputs(m, xq, tmp_path / out)
        np.testing.assert_array_equal(out_c, oracle.run_oracle(m, xq).reshape(1, -1))


@pytest.mark.parametrize(
    "names,message",
    [
        (["nope"], "no tensor named 'nope'"),
        (["x"], "is the network input"),
        (["y"], "is the network output"),
        (["m1"], "keeps the quantization of 'r3'"),
    ],
)
def test_bad_names_are_refused(calib, names, message):
    with pytest.raises(Q4Error, match=f"residual_activations.*{message}"):
        quantize_graph(tiny_resnet(), calib, _recipe(names))


def test_only_for_4_bit_activations_and_best_preset_uses_it():
    with pytest.raises(Q4Error, match="residual_activations': only for 4-bit"):
        Recipe(activation_bits=8, residual_activations=["r1"]).validate()
    assert preset("best", 4).residual_activations == ["@last_input"]
    assert preset("best", 8).residual_activations == []
