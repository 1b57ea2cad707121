"""Grouped and dilated convolutions, depthwise with a channel multiplier, max pooling with a
ceil_mode overhang and average pooling with a divisor per window (``count_pads``): the generated C
(int8 and packed 4-bit activations, multi-term layers) against the oracle on random models, under
the sanitizers, their .q4 round trip, and the kernel choice on boards with optimised variants
(only the portable kernels run these forms; checked bit-exact under QEMU on Cortex-M4)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from q4sdk.codegen import render as codegen
from q4sdk.ir.q4file import load_q4, save_q4
from q4sdk.ir.qmodel import QModel
from q4sdk.targets.host_build import CModel
from random_models import (
    _Builder,
    assert_c_equals_oracle,
    build_c,
    random_input,
    random_model,
    sanitized_outputs,
)

FORMS = ("conv_form", "pool_form", "conv_form", "pool_form", "add", "conv2d")


def _has_forms(model: QModel) -> bool:
    """Dilation, 1 < groups < C, a channel multiplier, counted avgpool and a padded maxpool."""
    found = set()
    for op in model.ops:
        a, c = op.attrs, model.tensors[op.inputs[0]].shape[-1]
        found |= {k for k in ("dilation", "count_pads") if k in a}
        if 1 < a.get("groups", 1) < c:
            found.add("groups")
        if op.kind == "depthwise_conv2d" and op.arrays["weight"].shape[0] > c:
            found.add("multiplier")
        if op.kind == "maxpool" and (a["pads"][2] or a["pads"][3]):
            found.add("overhang")
    return len(found) == 5


def _forms_model(seed: int, n_ops: int = 12) -> QModel:
    """A random chain with the new forms; the seed is bumped until it has them all."""
    while True:
        model = random_model(np.random.default_rng(seed), n_ops=n_ops, kinds=FORMS, name=f"f{seed}")
        if _has_forms(model):
            return model
        seed += 1000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_conv_and_pool_forms_match_oracle(tmp_path, seed):
    model = _forms_model(seed)
    cm = build_c(model, tmp_path)
    assert_c_equals_oracle(cm, model, random_input(model, np.random.default_rng(seed), 16))


class _W4A4(_Builder):
    def tensor(self, shape, bits=None) -> str:
        return super().tensor(shape, 4)


@pytest.mark.parametrize("seed", [4, 5])
def test_conv_and_pool_forms_packed_are_bit_exact(tmp_path, seed):
    rng = np.random.default_rng(seed)
    b = _W4A4(rng, (int(rng.integers(4, 10)), int(rng.integers(4, 10)), int(rng.choice([4, 6]))))
    for _ in range(10):
        {"conv_form": b.conv_form, "pool_form": b.pool_form, "add": b.add}[FORMS[int(rng.integers(5))]]()
    b.flatten_fc()
    model = b.model(f"p{seed}")
    report = codegen.generate(model, tmp_path / "gen", "p", pack_activations=True)
    assert all(op.kernel.endswith("_p4") for op in report.ops if op.kind != "reshape")
    cm = CModel(tmp_path / "gen", build_dir=tmp_path / "build")
    assert_c_equals_oracle(cm, model, random_input(model, rng, 16))


def test_conv_and_pool_forms_under_sanitizers(tmp_path):
    model = _forms_model(7)
    xq = random_input(model, np.random.default_rng(7), 8)
    from q4sdk.ir.oracle import run_oracle

    np.testing.assert_array_equal(sanitized_outputs(model, xq, tmp_path), run_oracle(model, xq))


class _SingleTerm(_Builder):
    def multi_term(self, op, o, acc_scale) -> None:
        """A .q4 file holds no second-input layers."""


def test_optional_attrs_round_trip_and_stay_out_when_default(tmp_path):
    rng = np.random.default_rng(8)
    b = _SingleTerm(rng, (9, 8, 6), bits=8)
    for form in ("conv_form", "conv_form", "pool_form", "conv_form", "pool_form", "conv_form"):
        getattr(b, form)()
    model = b.model("rt")
    assert any("dilation" in op.attrs for op in model.ops)
    save_q4(model, tmp_path / "m.q4")
    back = load_q4(tmp_path / "m.q4")
    assert [op.attrs for op in back.ops] == [
        {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in op.attrs.items()} for op in model.ops
    ]
    plain = random_model(np.random.default_rng(8), n_ops=6, kinds=("conv2d", "depthwise_conv2d", "avgpool"))
    assert not any(set(op.attrs) & {"dilation", "groups", "count_pads"} for op in plain.ops)
    files, _ = codegen.render(plain, "o")
    assert not any(".dilation_h" in text or ".count_multiplier" in text for text in files.values())
    files, _ = codegen.render(model, "o")
    assert any(".dilation_h" in text for text in files.values())


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547", "rp2040", "rv32imc"])
def test_optimised_kernels_only_for_dense_windows(board):
    """A dilated, grouped or channel-multiplier layer calls its portable kernel; a plain conv of the
    same model still takes the board's variant."""
    from q4sdk.targets.boards import load_board

    rng = np.random.default_rng(9)
    b = _SingleTerm(rng, (12, 12, 6), bits=8)
    for form in ("conv", "conv_form", "conv_form", "conv", "conv_form", "conv_form", "conv_form"):
        getattr(b, form)()
    model = b.model("k")
    _, report = codegen.render(model, "o", target=load_board(board), kernels="optimised")
    by_name = {op.name: op for op in model.ops}
    plain_seen = special_seen = False
    for r in report.ops:
        op = by_name.get(r.name)
        if op is None or op.kind not in ("conv2d", "depthwise_conv2d"):
            continue
        x = model.tensors[op.inputs[0]]
        special = (
            list(op.attrs.get("dilation", [1, 1])) != [1, 1]
            or op.attrs.get("groups", 1) != 1
            or (op.kind == "depthwise_conv2d" and op.arrays["weight"].shape[0] != x.shape[2])
        )
        portable = r.kernel in (f"q4_{op.kind}_s4", f"q4_{op.kind}_s4_terms")
        assert portable if special else True, (r.name, r.kernel)
        plain_seen = plain_seen or (not special and not portable)
        special_seen = special_seen or special
    assert plain_seen and special_seen  # the same model's plain layers do take the board's variants


def test_forms_with_optimised_kernels_under_qemu(tmp_path):
    """On Cortex-M4 (mps2-an386, DSP variants chosen for the plain layers) the whole model, forms
    on their portable kernels, gives the oracle's outputs under QEMU."""
    from q4sdk.targets.boards import load_board
    from q4sdk.targets.firmware import toolchain_available
    from q4sdk.targets.run import format_target_run, run_on_board

    board = load_board("mps2-an386")
    ok, reason = toolchain_available(board, for_running=True)
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    rng = np.random.default_rng(11)
    b = _SingleTerm(rng, (10, 10, 6), bits=8)
    for form in ("conv", "conv_form", "pool_form", "conv_form", "conv", "conv_form"):
        getattr(b, form)()
    b.flatten_fc()
    model = b.model("q")
    run = run_on_board(model, board, random_input(model, rng, 2), tmp_path)
    assert run.ok, format_target_run(run)
    by_name = {op.name: op for op in model.ops}
    kernels = {layer.op: layer.kernel for layer in run.layers}
    assert any(k.endswith("_dsp") for k in kernels.values())
    special = [n for n, op in by_name.items() if set(op.attrs) & {"dilation", "groups"}]
    assert special and all(kernels[n] == f"q4_{by_name[n].kind}_s4" for n in special)
