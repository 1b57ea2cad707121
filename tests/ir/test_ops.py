"""The op table is complete: every integer op kind has its behaviour in each stage's registry, a
template, kernel sources that exist and a section in docs/integer-spec.md (the checklist in
docs/contributing.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from q4sdk.codegen.op_args import TEMPLATE_ARGS
from q4sdk.ir.float_exec import FLOAT_FUNCTIONS
from q4sdk.ir.float_graph import FLOAT_OPS
from q4sdk.ir.ops import LAYER_KINDS, OPS, QOP_KINDS, SAME_QUANT_KINDS, WEIGHTED_KINDS
from q4sdk.ir.oracle import OP_FUNCTIONS
from q4sdk.ir.validate import SHAPE_RULES
from q4sdk.ptq.lower import LOWERINGS
from q4sdk.ptq.plan import KIND_OF_FLOAT_OP
from q4sdk.resources import RUNTIME_DIR, TEMPLATE_DIR

SPEC = Path(__file__).resolve().parents[2] / "docs" / "integer-spec.md"


@pytest.mark.parametrize("kind", QOP_KINDS)
def test_every_kind_has_its_behaviour_in_every_registry(kind):
    assert OPS[kind].kind == kind
    for registry in (OP_FUNCTIONS, SHAPE_RULES, TEMPLATE_ARGS):
        assert kind in registry
    if OPS[kind].float_ops:  # kinds the quantizer makes from float ops (residual_split it inserts)
        assert kind in LOWERINGS


@pytest.mark.parametrize("kind", QOP_KINDS)
def test_every_kind_has_a_template_and_its_kernels(kind):
    spec = OPS[kind]
    assert (TEMPLATE_DIR / "ops" / f"{kind}.c.j2").is_file()
    assert spec.kernel is not None or spec.aliases_input  # only an aliasing op needs no call
    if spec.weighted:
        assert spec.terms_kernel is not None and spec.packed_terms_kernel is not None
    sources = [
        spec.kernel,
        spec.terms_kernel,
        spec.packed_kernel,
        spec.packed_terms_kernel,
        *(v.source for v in spec.variants + spec.terms_variants),
    ]
    for source in filter(None, sources):
        assert (RUNTIME_DIR / "src" / source).is_file(), source
    for v in spec.variants + spec.terms_variants:
        assert f"{v.function}(" in (RUNTIME_DIR / "src" / v.source).read_text()
        assert v.requires in ("dsp", "mve", "armv6m", "rv32")  # Board features


@pytest.mark.parametrize("kind", QOP_KINDS)
def test_every_kind_has_a_section_in_the_integer_spec(kind):
    """Convention: each kind has a heading ``### <kind>``, optionally followed by a remark in
    parentheses."""
    headings = re.findall(r"^### (\S+)(?: \(.*\))?$", SPEC.read_text(), flags=re.M)
    assert kind in headings


def test_float_ops_all_lower_and_all_run():
    assert set(FLOAT_FUNCTIONS) == set(FLOAT_OPS)
    assert set(KIND_OF_FLOAT_OP) == set(FLOAT_OPS)
    for kind, spec in OPS.items():
        for op in spec.float_ops:
            assert op in FLOAT_OPS, (kind, op)


def test_derived_lists_follow_the_table():
    assert set(WEIGHTED_KINDS) == {"conv2d", "depthwise_conv2d", "fully_connected", "conv_transpose"}
    assert set(SAME_QUANT_KINDS) == {"maxpool", "clamp", "pad", "reshape", "resize", "gather"}
    assert set(WEIGHTED_KINDS) <= set(LAYER_KINDS)
    assert not set(SAME_QUANT_KINDS) & set(WEIGHTED_KINDS)
    for kind in WEIGHTED_KINDS:
        assert OPS[kind].inputs == (1, 2) and "weight2" in OPS[kind].optional
