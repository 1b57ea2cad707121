"""Shape and indexing ops (issue 12, section 2): the gather kind (channel shuffle, Slice, Split,
Gather), reduce_mean over adjacent axes and concat on any axis -- the C against the oracle bit for
bit on random models (int8 and packed 4-bit activations) -- and the layout-op importer against
onnxruntime, including 1-D [N, C, L] models."""

from __future__ import annotations

import numpy as np
import pytest

from q4sdk.codegen.render import generate
from q4sdk.ir.oracle import run_oracle
from q4sdk.targets.host_build import CModel
from random_models import _Builder, assert_c_equals_oracle, random_input, random_model


@pytest.mark.parametrize("seed", range(3))
def test_random_shape_models_c_equals_oracle(tmp_path, seed):
    rng = np.random.default_rng(300 + seed)
    kinds = ("gather", "reduce_mean", "concat_any_axis", "conv2d", "softmax", "gather", "concat_any_axis")
    model = random_model(rng, n_ops=8, kinds=kinds, name=f"shape{seed}")
    assert {"gather", "concat"} <= {op.kind for op in model.ops}
    generate(model, tmp_path / "gen", "net")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 16))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_softmax_every_axis_c_equals_oracle_including_extreme_tables(tmp_path, axis):
    """Long lines (64 elements) at steps 2^16 - 1 (the unsigned 32-bit bounds), a flat table (all
    2^15) and a steep one (exp underflows to 0 after the max)."""
    rng = np.random.default_rng(20 + axis)
    b = _Builder(rng, (4, 64, 3) if axis == 1 else (64, 2, 3) if axis == 0 else (2, 3, 64), bits=8)
    for table in (np.full(256, 1 << 15, np.int32), np.array([1 << 15] + [0] * 255, np.int32)):
        out = b.tensor(b.tensors[b.cur].shape, bits=8)
        b.cur = b.emit("softmax", [b.cur], out, {"axis": axis, "steps": (1 << 16) - 1}, {"table": table})
    b.softmax()
    model = b.model("smax")
    generate(model, tmp_path / "gen", "net")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 8))


@pytest.mark.parametrize("axes", [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)])
def test_every_reduce_mean_axis_run_c_equals_oracle(tmp_path, axes):
    """Each run of adjacent axes of (H, W, C): H, W, C, (H, W), (W, C), (H, W, C)."""
    rng = np.random.default_rng(11)
    b = _Builder(rng, (3, 5, 4), bits=8)
    first, last = axes
    shape = b.tensors[b.cur].shape
    out = b.tensor(tuple(1 if first <= i <= last else d for i, d in enumerate(shape)))
    m, s = b.requant(1, 8.0 * int(np.prod(shape[first : last + 1])), out)
    b.cur = b.emit(
        "reduce_mean", [b.cur], out, {"axes": [first, last], **b.act(out)}, {"multiplier": m, "shift": s}
    )
    model = b.model("means")
    generate(model, tmp_path / "gen", "net")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 8))


def test_packed_gather_and_reduce_mean_c_equals_oracle(tmp_path):
    """4-bit tensors two per byte, odd sizes (slices not byte aligned): q4_gather_p4, q4_reduce_mean_p4
    and q4_concat_p4 on a non-channel axis."""
    rng = np.random.default_rng(12)
    b = _Builder(rng, (3, 5, 3), bits=4)
    b.gather()
    b.concat_any_axis()
    b.gather()
    b.softmax()
    b.reduce_mean()
    model = b.model("pshape")
    for t in model.tensors.values():
        t.bits = 4
        t.zero_point = min(max(t.zero_point, -8), 7)
    for op in model.ops:
        if "act_min" in op.attrs:
            op.attrs["act_min"] = max(op.attrs["act_min"], -8)
            op.attrs["act_max"] = min(max(op.attrs["act_max"], op.attrs["act_min"]), 7)
    report = generate(model, tmp_path / "gen", "net", pack_activations=True)
    assert {"q4_gather_p4.c", "q4_reduce_mean_p4.c", "q4_concat_p4.c", "q4_softmax_p4.c"} <= set(
        report.kernel_sources
    )
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    xq = random_input(model, rng, 16)
    assert_c_equals_oracle(cm, model, xq)
    np.testing.assert_array_equal(cm.run(xq), run_oracle(model, xq))
