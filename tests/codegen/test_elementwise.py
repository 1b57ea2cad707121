"""The element-wise kinds ``mul``, ``addsub`` and ``lut_channel``: the C against the oracle bit for
bit on random models (int8 and packed 4-bit activations, the second operand of the same shape or one
value per channel), under the sanitizers, and the validator's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import run_oracle
from q4sdk.ir.validate import validate_model
from q4sdk.targets.host_build import CModel
from random_models import _Builder, assert_c_equals_oracle, random_input, random_model, sanitized_outputs

KINDS = ("mul", "addsub", "lut_channel")


@pytest.mark.parametrize("seed", range(4))
def test_random_elementwise_models_c_equals_oracle(tmp_path, seed):
    rng = np.random.default_rng(300 + seed)
    model = random_model(rng, n_ops=7, kinds=(*KINDS, *KINDS, "conv2d", "add"), name=f"ew{seed}")
    assert {op.kind for op in model.ops} & set(KINDS)
    generate(model, tmp_path / "gen", "net")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 16))


def _chain(rng, shape, bits, extreme=False):
    b = _Builder(rng, shape, bits=bits, extreme=extreme)
    b.mul()
    b.addsub()
    b.lut_channel()
    b.mul()
    b.addsub()
    return b


@pytest.mark.parametrize("shape", [(4, 3, 5), (7,)])
def test_extreme_values_match_and_are_sanitizer_clean(tmp_path, shape):
    """Saturating multipliers and extreme zero points, under ASan + UBSan."""
    rng = np.random.default_rng(11)
    model = _chain(rng, shape, 8, extreme=True).model("ext")
    xq = random_input(model, rng, 12)
    np.testing.assert_array_equal(
        sanitized_outputs(model, xq, tmp_path), run_oracle(model, xq).reshape(12, -1)
    )


def test_packed_elementwise_c_equals_oracle(tmp_path):
    """4-bit tensors stored two per byte (odd sizes): q4_mul_p4, q4_addsub_p4, q4_lut_channel_p4."""
    rng = np.random.default_rng(7)
    b = _chain(rng, (3, 3, 5), 4)
    model = b.model("pew")
    for t in model.tensors.values():
        t.bits = 4
        t.zero_point = min(max(t.zero_point, -8), 7)
    for op in model.ops:
        op.attrs.update({"act_min": -8, "act_max": 7} if "act_min" in op.attrs else {})
        if op.kind == "lut_channel":
            op.arrays["table"] = rng.integers(-8, 8, size=(5, 16)).astype(np.int8)
    validate_model(model)
    report = generate(model, tmp_path / "gen", "net", pack_activations=True)
    assert {"q4_mul_p4.c", "q4_addsub_p4.c", "q4_lut_channel_p4.c"} <= set(report.kernel_sources)
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    xq = random_input(model, rng, 16)
    assert_c_equals_oracle(cm, model, xq)


def test_validator_refuses_bad_operands():
    """b must have a's shape or be (1, 1, C): a (4, 1, 3) row of a (4, 4, 3) map is refused."""
    rng = np.random.default_rng(3)
    b = _Builder(rng, (4, 4, 3), bits=8)
    x = b.cur
    row = b.emit(
        "maxpool", [x], b.like(x, (4, 1, 3)), {"kernel": [1, 4], "stride": [1, 4], "pads": [0, 0, 0, 0]}
    )
    out = b.tensor((4, 4, 3))
    m, s = b.requant(1, 4000.0, out)
    b.cur = b.emit("mul", [x, row], out, b.act(out), {"multiplier": m, "shift": s})
    with pytest.raises(Q4Error, match="one value per channel"):
        validate_model(b.model("bad"))


@pytest.mark.parametrize("name", ["op_mul_se", "op_prelu", "op_sub_div_norm", "op_add_broadcast"])
def test_quantize_generate_verify_packed_w4a4(tmp_path, name):
    """The zoo's per-op models at W4A4 with activations stored two per byte: quantize -> .q4 ->
    generate (packed) -> the C bit-exact against the oracle on every tensor."""
    from q4sdk.api import load_float_model
    from q4sdk.ir.oracle import quantize_input
    from q4sdk.ir.q4file import load_q4, save_q4
    from q4sdk.ptq.pipeline import quantize_graph
    from q4sdk.ptq.recipe import Recipe
    from tests.zoo.models import build, random_inputs

    calib = random_inputs(name, 16, seed=1).numpy()
    graph = load_float_model(build(name), calib[:1])
    model = quantize_graph(graph, calib, Recipe(activation_bits=4))
    kinds = {op.kind for op in model.ops}
    assert kinds & set(KINDS)
    save_q4(model, tmp_path / "m.q4")
    model = load_q4(tmp_path / "m.q4")
    report = generate(model, tmp_path / "gen", "net", pack_activations=True)
    assert any(src.endswith("_p4.c") for src in report.kernel_sources)
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, quantize_input(model, random_inputs(name, 6, seed=2).numpy()))
