"""Code generator: deterministic, warning-free C, safe file handling, exact input quantizer."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from q4sdk.codegen.c_syntax import c_identifier, c_string, unique_identifiers
from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import dequantize_output, quantize_input
from q4sdk.ir.packing import pack_int4_rows
from q4sdk.ir.qmodel import QTensor
from q4sdk.targets.host_build import CModel
from random_models import WARN_FLAGS, random_model


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model():
    # seed 7: single- and multi-term convolutions, pooling, pad, clamp and a single-term fc head
    return random_model(np.random.default_rng(7), n_ops=8, name="Demo model/v1", layout="NCHW")


def test_generation_is_deterministic(model, tmp_path):
    a = generate(model, tmp_path / "a", "net")
    generate(copy.deepcopy(model), tmp_path / "b", "net")
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa == fb
    assert sorted(fa) == sorted(p.relative_to(tmp_path / "a").as_posix() for p in a.files)


def test_only_used_kernels_are_copied(model, tmp_path):
    generate(model, tmp_path / "g", "net")
    kernels = {p.name for p in (tmp_path / "g" / "q4_runtime").glob("*.c")}
    expect = set()
    for op in model.ops:
        if op.kind == "reshape":
            continue
        weighted = "conv" in op.kind or "fully" in op.kind
        multi = len(op.inputs) > 1 and op.kind != "add" or "weight2" in op.arrays
        expect.add(f"q4_{op.kind}_{'s4' if weighted else 's8'}{'_terms' if multi else ''}.c")
    assert kernels == expect


def test_report_figures(model, tmp_path):
    rep = generate(model, tmp_path / "g", "net")
    expect = 0
    for op in model.ops:
        for key in ("weight", "weight2"):
            if key in op.arrays:
                w = op.arrays[key]
                expect += pack_int4_rows(w.reshape(w.shape[0], -1)).size
        if "weight" in op.arrays:
            expect += 4 * (op.arrays["bias"].size + op.arrays["multiplier"].size + op.arrays["shift"].size)
    assert rep.weight_bytes == expect
    header = (tmp_path / "g" / "net.h").read_text()
    assert f"#define NET_ARENA_SIZE {rep.arena_bytes}\n" in header
    assert rep.peak_op in {op.name for op in model.ops}
    conv = next(op for op in model.ops if op.kind == "conv2d" and "weight2" in op.arrays)
    row = next(r for r in rep.ops if r.name == conv.name)
    ho, wo, o = model.tensors[conv.output].shape
    terms = len(conv.inputs) * (2 if "weight2" in conv.arrays else 1)
    assert row.macs == terms * ho * wo * o * int(np.prod(conv.arrays["weight"].shape[1:]))


def test_refuses_to_overwrite(model, tmp_path):
    out = tmp_path / "g"
    generate(model, out, "net")
    (out / "net_weights.c").write_text("stale")
    with pytest.raises(Q4Error, match="net.c"):
        generate(model, out, "net")
    assert (out / "net_weights.c").read_text() == "stale"
    generate(model, out, "net", overwrite=True)
    assert (out / "net_weights.c").read_text() != "stale"


def test_invalid_model_writes_nothing(model, tmp_path):
    bad = copy.deepcopy(model)
    conv = next(op for op in bad.ops if op.kind == "conv2d")
    conv.arrays["shift"] = conv.arrays["shift"].copy()
    conv.arrays["shift"][0] = 63
    with pytest.raises(
        Q4Error, match=f"op '{conv.name}' \\(conv2d\\): array 'shift' values must lie in .*63"
    ):
        generate(bad, tmp_path / "g", "net")
    assert not (tmp_path / "g").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("weight", 8, "array 'weight' values must lie in"),
        ("bias", 2**31 - 1, "bias too large"),
        ("multiplier", 5, "array 'multiplier' values must be 0 or in .*got 5"),
    ],
)
def test_range_checks_name_the_op(model, tmp_path, field, value, message):
    bad = copy.deepcopy(model)
    op = next(op for op in bad.ops if op.kind == "fully_connected")
    arr = bad.ops[bad.ops.index(op)].arrays[field]
    arr.flat[0] = value
    with pytest.raises(Q4Error, match=f"op '{op.name}' \\(fully_connected\\): {message}"):
        generate(bad, tmp_path / "g", "net")


def test_bad_name_is_refused(model, tmp_path):
    with pytest.raises(Q4Error, match="my-net.*my_net"):
        generate(model, tmp_path / "g", "my-net")


def test_identifier_sanitising():
    assert c_identifier("/layer1/conv.0/Conv") == "layer1_conv_0_Conv"
    assert c_identifier("3x3") == "n_3x3"
    assert c_identifier("int") == "int_"
    assert c_identifier("__init__") == "init"
    assert c_identifier("") == "n" and c_identifier("///") == "n"
    assert c_identifier("relu\u00e9") == "relu"
    assert unique_identifiers(["a.b", "a/b", "A_B", "a_b_2"]) == ["a_b", "a_b_2", "A_B_3", "a_b_2_2"]
    assert c_string('x"\\?\u00e9') == '"x\\042\\134\\077\\303\\251"'


@pytest.mark.parametrize("compiler", ["gcc", "clang", "arm-none-eabi-gcc"])
def test_generated_code_compiles_warning_free(model, tmp_path, compiler):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    target = ["-mcpu=cortex-m4", "-mthumb", "-ffreestanding"] if compiler.startswith("arm") else []
    weird = copy.deepcopy(model)
    for i, op in enumerate(weird.ops):  # hostile node names: collisions, keywords, comment ends
        op.name = ["int", "a/b", "a.b", "*/ x", "9lives", '\u00e9"q"', "??=", "a_b"][i % 8] + " ." * (i // 8)
    gen = tmp_path / "g"
    generate(weird, gen, "net")
    sources = [gen / "net.c", gen / "net_weights.c", *sorted((gen / "q4_runtime").glob("*.c"))]
    for defines in ([], ["-DQ4_DEBUG_DUMP"]):
        for src in sources:
            res = subprocess.run(
                [
                    compiler,
                    *WARN_FLAGS,
                    *target,
                    "-O2",
                    *defines,
                    "-c",
                    str(src),
                    "-o",
                    str(tmp_path / "x.o"),
                ],
                capture_output=True,
                text=True,
            )
            assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def cmodels(model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cg")
    out = {}
    for layout in ("NCHW", "NHWC"):
        m = copy.deepcopy(model)
        m.meta["input_layout"] = layout
        generate(m, tmp / layout, f"q_{layout}")
        out[layout] = (m, CModel(tmp / layout, build_dir=tmp / "build"))
    return out


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_quantize_input_matches_python(cmodels, layout):
    m, cm = cmodels[layout]
    t = m.input_tensor
    h, w, c = t.shape
    shape = (c, h, w) if layout == "NCHW" else (h, w, c)
    rng = np.random.default_rng(1)
    n = 64
    x = rng.normal(0, 40 * t.scale, size=(n, *shape)).astype(np.float32)
    # exact half-way cases of x * inv_scale, extremes and specials
    inv = np.float32(1.0 / t.scale)
    ties = (rng.integers(-300, 300, size=(n, *shape)) + np.float32(0.5)) / inv
    x[: n // 2] = ties[: n // 2].astype(np.float32)
    x[-1].flat[:4] = [np.inf, -np.inf, 1e30, -1e30]
    x[-2] = 0.0
    x[-2].flat[0] = -0.0
    np.testing.assert_array_equal(cm.quantize_input(x), quantize_input(m, x))
    prod = (x * inv)[np.isfinite(x * inv)]  # the infinities have no fractional part to test
    assert np.count_nonzero(np.abs(prod - np.trunc(prod)) == 0.5) > 100  # real ties were tested


def test_dequantize_output_matches_python(cmodels):
    m, cm = cmodels["NHWC"]
    t = m.output_tensor
    q = np.arange(t.qmin, t.qmax + 1, dtype=np.int8)
    q = np.resize(q, (3, *t.shape)).astype(np.int8)
    np.testing.assert_array_equal(cm.dequantize_output(q), dequantize_output(m, q))


def test_vector_input_model(tmp_path):
    """A model whose input is a vector: quantize_input is a plain element-wise loop."""
    rng = np.random.default_rng(2)
    m = random_model(rng, n_ops=0, name="vec", head=True)
    cut = next(i for i, op in enumerate(m.ops) if op.kind == "reshape")
    m.ops = m.ops[cut + 1 :]  # the fully_connected now reads the input vector directly
    t = m.tensors[m.ops[0].inputs[0]]
    assert len(t.shape) == 1
    m.tensors[t.name] = QTensor(t.name, t.shape, t.bits, 0.125, 3 if t.bits == 8 else 1)
    m.input = t.name
    m.tensors = {k: v for k, v in m.tensors.items() if k == t.name or k in {op.output for op in m.ops}}
    generate(m, tmp_path / "g", "vec")
    cm = CModel(tmp_path / "g", build_dir=tmp_path / "build")
    x = rng.normal(0, 2, size=(8, t.size)).astype(np.float32)
    np.testing.assert_array_equal(cm.quantize_input(x), quantize_input(m, x))
