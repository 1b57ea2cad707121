"""verify(): agreement on a correct build, and the right layer named for a corrupted weight."""

from __future__ import annotations

import re

import numpy as np
import pytest

from q4sdk.check.verify import verify
from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import run_oracle
from q4sdk.targets.host_build import CModel
from random_models import random_input, random_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    rng = np.random.default_rng(21)
    model = random_model(rng, n_ops=5, kinds=("conv2d", "depthwise_conv2d", "clamp"), name="v")
    xq = random_input(model, rng, 16)
    generate(model, tmp / "good", "v")
    return tmp, model, xq


def test_correct_build_verifies(setup):
    tmp, model, xq = setup
    res = verify(model, tmp / "good", xq, build_dir=tmp / "build")
    assert res.ok and res.samples == 16 and res.first_mismatch is None


def test_corrupted_weight_is_found_at_its_layer(setup):
    tmp, model, xq = setup
    target = next(op for op in model.ops if op.kind in ("conv2d", "depthwise_conv2d"))
    assert len(np.unique(run_oracle(model, xq, capture=True)[1][target.output])) > 20  # not saturated
    gen = tmp / "bad"
    generate(model, gen, "v")
    weights = gen / "v_weights.c"
    text = weights.read_text()
    # flip nibble bits of every packed byte of the target layer's weights
    pattern = re.compile(r"(v_op%d_\w+_weight\[\d+\] = \{\n)(.*?)(\n\};)" % model.ops.index(target), re.S)
    match = pattern.search(text)
    assert match, "weight table of the target layer not found"
    body = re.sub(r"0x([0-9a-f]{2})", lambda m: f"0x{int(m.group(1), 16) ^ 0x77:02x}", match.group(2))
    weights.write_text(text[: match.start(2)] + body + text[match.end(2) :])

    res = verify(model, CModel(gen, build_dir=tmp / "build"), xq)
    assert not res.ok
    first = res.first_mismatch
    assert first.op == target.name and first.tensor == target.output
    assert first.c_value != first.oracle_value
    # the index is the first differing element of that sample's layer output
    c_out, dumps = CModel(gen, build_dir=tmp / "build").run_with_dumps(xq[first.sample : first.sample + 1])
    assert dumps[target.output][0, first.index] == first.c_value


def test_wrong_model_is_refused(setup):
    tmp, model, xq = setup
    other = random_model(np.random.default_rng(99), n_ops=2, name="o")
    if other.input_tensor.shape == model.input_tensor.shape:
        pytest.skip("random shapes happened to agree")
    with pytest.raises(Q4Error, match="not the same model"):
        verify(other, tmp / "good", random_input(other, np.random.default_rng(0), 2), build_dir=tmp / "build")


def test_resnet8_generated_c_is_bit_exact(shared_dir, tmp_path):
    """The real model: quantized with W4A4, generated, compiled, bit-exact with the oracle."""
    from q4sdk.api import quantize
    from q4sdk.ir.oracle import quantize_input

    calib = np.load(shared_dir / "data" / "cifar10_calib.npz")["x"][:32]
    test = np.load(shared_dir / "data" / "cifar10_test.npz")["x"][:24]
    to_nchw = lambda x: x.transpose(0, 3, 1, 2).astype(np.float32)  # noqa: E731
    qm = quantize(str(shared_dir / "models" / "resnet8_cifar10.onnx"), to_nchw(calib), activations=4)
    report = generate(qm, tmp_path / "gen", "resnet8")
    assert report.arena_bytes >= report.peak_live_bytes > 0
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    xq = cm.quantize_input(to_nchw(test))
    np.testing.assert_array_equal(xq, quantize_input(qm, to_nchw(test)))
    res = verify(qm, cm, xq)
    assert res.ok, res.first_mismatch
