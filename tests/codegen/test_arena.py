"""Arena planner: live tensors never share bytes, chains are packed optimally, reshape aliases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from q4sdk.codegen.arena import ALIGN, plan_arena
from q4sdk.errors import Q4Error
from q4sdk.ir.qmodel import QModel, QOp, QTensor


def _model(sizes: dict[str, int], ops: list[tuple[str, list[str], str]], inp="x", out=None) -> QModel:
    tensors = {n: QTensor(n, (s,), 8, 1.0, 0) for n, s in sizes.items()}
    qops = [QOp(f"op_{o}", kind, ins, o) for kind, ins, o in ops]
    return QModel("m", inp, out or ops[-1][2], tensors, qops)


def _lifetimes(model: QModel) -> dict[str, tuple[int, int]]:
    first = {model.input: -1}
    last = {model.input: -1}
    for i, op in enumerate(model.ops):
        first[op.output] = last[op.output] = i
        for t in op.inputs:
            last[t] = i
    last[model.output] = len(model.ops)
    return {t: (first[t], last[t]) for t in first}


def _alias_root(model: QModel) -> dict[str, str]:
    root = {model.input: model.input}
    for op in model.ops:
        root[op.output] = root[op.inputs[0]] if op.kind == "reshape" else op.output
    return root


def assert_valid(model: QModel):
    plan = plan_arena(model)
    life, root = _lifetimes(model), _alias_root(model)
    # an alias group lives as long as any of its members
    group: dict[str, tuple[int, int]] = {}
    for t, (a, b) in life.items():
        g0, g1 = group.get(root[t], (a, b))
        group[root[t]] = (min(g0, a), max(g1, b))
    names = list(life)
    for t in names:
        off = plan.offsets[t]
        assert off % ALIGN == 0 and off + model.tensors[t].size <= plan.size
    for i, t in enumerate(names):
        for u in names[i + 1 :]:
            if root[t] == root[u]:
                assert plan.offsets[t] == plan.offsets[u]
                continue
            (a0, a1), (b0, b1) = group[root[t]], group[root[u]]
            if a0 <= b1 and b0 <= a1:
                ta, tb = plan.offsets[t], plan.offsets[u]
                assert ta + model.tensors[t].size <= tb or tb + model.tensors[u].size <= ta, (t, u)
    assert plan.size % ALIGN == 0 and plan.size >= plan.peak_live_bytes
    return plan


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_graphs_never_overlap_live_buffers(data):
    n = data.draw(st.integers(1, 12))
    sizes = {"x": data.draw(st.integers(1, 300))}
    ops = []
    for i in range(n):
        avail = list(sizes)
        kind = data.draw(st.sampled_from(["clamp", "add", "reshape"]))
        ins = [data.draw(st.sampled_from(avail)) for _ in range(2 if kind == "add" else 1)]
        name = f"t{i}"
        sizes[name] = sizes[ins[0]] if kind == "reshape" else data.draw(st.integers(1, 300))
        ops.append((kind, ins, name))
    assert_valid(_model(sizes, ops))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 500), min_size=2, max_size=12))
def test_chains_are_optimal(sizes):
    names = ["x"] + [f"t{i}" for i in range(len(sizes) - 1)]
    model = _model(dict(zip(names, sizes)), [("clamp", [a], b) for a, b in zip(names, names[1:])])
    plan = assert_valid(model)
    aligned = [-(-s // ALIGN) * ALIGN for s in sizes]
    assert plan.size == max(a + b for a, b in zip(aligned, aligned[1:]))


def test_peak_op_and_live_bytes():
    # x(16) -> a(160) -> b(32) -> c(16): op_b holds a and b live at once (192 bytes)
    model = _model(
        {"x": 16, "a": 160, "b": 32, "c": 16},
        [("clamp", ["x"], "a"), ("clamp", ["a"], "b"), ("clamp", ["b"], "c")],
    )
    plan = assert_valid(model)
    assert plan.peak_op == "op_b" and plan.peak_live_bytes == 192 and plan.size == 192
    assert plan.live_bytes == [176, 192, 48]


def test_duplicate_op_names_do_not_confuse_the_planner():
    sizes = {"x": 16, "a": 160, "b": 32, "c": 160, "d": 16}
    model = _model(
        sizes, [("clamp", ["x"], "a"), ("clamp", ["a"], "b"), ("clamp", ["b"], "c"), ("clamp", ["c"], "d")]
    )
    for op in model.ops:
        op.name = "same"
    plan = assert_valid(model)
    assert plan.size == 192 and min(plan.offsets.values()) >= 0


def test_residual_keeps_skip_tensor_alive():
    # x -> a -> b ; add(a, b) -> c : a is live while b is computed
    model = _model(
        {"x": 64, "a": 64, "b": 64, "c": 64},
        [("clamp", ["x"], "a"), ("clamp", ["a"], "b"), ("add", ["a", "b"], "c")],
    )
    plan = assert_valid(model)
    assert len({plan.offsets["a"], plan.offsets["b"], plan.offsets["c"]}) == 3
    assert plan.size == 192


def test_reshape_aliases_its_input():
    model = _model(
        {"x": 48, "a": 48, "b": 48, "c": 16},
        [("clamp", ["x"], "a"), ("reshape", ["a"], "b"), ("clamp", ["b"], "c")],
    )
    plan = assert_valid(model)
    assert plan.offsets["a"] == plan.offsets["b"]


def test_model_without_ops_holds_its_input():
    model = QModel("m", "x", "x", {"x": QTensor("x", (40,), 8, 1.0, 0)}, [])
    plan = plan_arena(model)
    assert plan.offsets == {"x": 0} and plan.size == 48 and plan.peak_op is None


def test_use_before_definition_is_an_error():
    model = _model({"x": 8, "a": 8, "b": 8}, [("clamp", ["b"], "a"), ("clamp", ["a"], "b")])
    with pytest.raises(Q4Error, match="op_a.*'b'"):
        plan_arena(model)


def test_deterministic():
    rng = np.random.default_rng(0)
    sizes = {"x": 100, **{f"t{i}": int(rng.integers(1, 400)) for i in range(10)}}
    names = list(sizes)
    ops = [("add", [names[i], names[max(0, i - 2)]], names[i + 1]) for i in range(10)]
    assert plan_arena(_model(sizes, ops)) == plan_arena(_model(sizes, ops))
