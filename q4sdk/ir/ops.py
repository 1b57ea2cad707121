"""The op table: every fact about an integer op kind, in one place.

``OPS[kind]`` (an :class:`OpSpec`) says what a ``QOp`` of that kind carries (input counts, attrs,
arrays and their dtypes), how the quantizer and the reports treat it (weighted, same
quantization as its input, counted as a layer), which float ops lower to it, and which C kernels
run it (portable, multi-term, packed 4-bit activations, and the architecture-optimised
variants). Every stage looks kinds up here instead of keeping its own list; per-kind *behaviour*
lives in one registry per stage, keyed by kind:

===========================================  ==============================================
registry                                     what it holds per kind
===========================================  ==============================================
``q4sdk.ir.validate.SHAPE_RULES``            the output shape an op must have
``q4sdk.ir.oracle.OP_FUNCTIONS``             the integer semantics (docs/integer-spec.md)
``q4sdk.ir.float_exec.FLOAT_FUNCTIONS``      the float semantics (keyed by float op)
``q4sdk.ptq.lower.LOWERINGS``                the quantizer's integer attrs and arrays
``q4sdk.codegen.op_args.TEMPLATE_ARGS``      the arguments of ``templates/ops/<kind>.c.j2``
===========================================  ==============================================

``tests/ir/test_ops.py`` checks that every kind has an entry in each of them, a template, its
kernel sources and a section in ``docs/integer-spec.md``; ``docs/contributing.md`` is the
checklist for adding one. The kind strings are stored in ``.q4`` files and never change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class KernelVariant:
    """An architecture-optimised kernel replacing the portable one of an op kind.

    ``requires`` names the Board feature it needs (``"dsp"``, ``"mve"``, ``"armv6m"`` or ``"rv32"``); ``scratch_bytes`` gives
    its scratch buffer size from K (= kh * kw * I) and O, as its ``*_get_buffer_size`` does
    (element-wise kinds pass K = O = 0 and a variant without scratch returns 0).
    ``max_input_bits`` is the widest input the variant accepts (4 for kernels that pack products
    of 4-bit activations).
    """

    function: str
    source: str  # relative to runtime_c/src
    requires: str
    scratch_bytes: Callable[[int, int], int]
    max_input_bits: int = 8


@dataclass(frozen=True)
class PackedBandKernel:
    """A kernel for packed 4-bit activations at the speed of the int8 kernels
    (``runtime_c/src/basic/q4_band_p4.c``, declared in ``q4_packed.h``).

    With ``wraps_variant`` it runs the op's optimised variant (``variants`` or ``terms_variants``)
    on bands of output rows unpacked into an int8 staging area, and takes the variant, the band's
    rows and the variant's scratch bytes as arguments; otherwise it works on the packed bytes
    itself (add: a table of the two input nibbles) and needs ``scratch_bytes``. Used only where
    the board has an optimised variant of the kind (``q4sdk.codegen.kernels.select_packed``).
    """

    function: str
    source: str = "basic/q4_band_p4.c"
    wraps_variant: bool = True
    scratch_bytes: int = 0


@dataclass(frozen=True)
class OpSpec:
    """What an op kind is. ``attrs`` maps attr name -> list length (0 for a scalar int);
    ``arrays`` and ``optional`` map array name -> dtype name. ``optional_attrs`` (name -> length)
    are attrs a QOp may leave out; absent, they have the value ``OPTIONAL_ATTR_DEFAULTS`` gives
    (or, without an entry there, the meaning docs/integer-spec.md states), and the quantizer
    writes them only when they differ from it, so older models keep their bytes.

    A weighted kind may be multi-term (docs/integer-spec.md): an optional second INT4 weight
    ``weight2`` (dual) and/or a second input (a residual-quantized tensor); it then runs the
    ``terms`` kernels. Kernel sources are relative to ``runtime_c/src`` (None: the kind needs no
    kernel, or has none of that form); ``variants`` / ``terms_variants`` are the optimised kernels
    in order of preference (``q4sdk.codegen.kernels.select_kernel``).
    """

    kind: str
    inputs: tuple[int, ...]  # allowed input counts; the first is the usual one
    attrs: dict
    arrays: dict
    optional: dict = field(default_factory=dict)
    optional_attrs: dict = field(default_factory=dict)
    weighted: bool = False  # INT4 weights: conv / dense layers
    same_quant: bool = False  # output keeps the input's bits, scale and zero point
    layer: bool = False  # one row per op in the accuracy report
    spatial: bool = False  # reads an (H, W, C) feature map
    aliases_input: bool = False  # output shares the input's arena bytes (reshape)
    float_ops: tuple[str, ...] = ()  # float graph ops that lower to this kind
    kernel: str | None = None
    terms_kernel: str | None = None
    packed_kernel: str | None = None
    packed_terms_kernel: str | None = None
    variants: tuple[KernelVariant, ...] = ()
    terms_variants: tuple[KernelVariant, ...] = ()
    packed_band: PackedBandKernel | None = None  # packed activations through the fast kernels
    packed_band_terms: PackedBandKernel | None = None  # the same for multi-term layers
    header: str | None = None  # a header of its own, copied when a model uses the kind

    @property
    def n_inputs(self) -> int:
        """The usual number of inputs (a multi-term layer may read one more)."""
        return self.inputs[0]


_ACT = {"act_min": 0, "act_max": 0}
_WINDOW = {"kernel": 2, "stride": 2, "pads": 4}
_CONV_ATTRS = {"stride": 2, "pads": 4, **_ACT}
_CONV_ARRAYS = {"weight": "int8", "bias": "int32", "multiplier": "int32", "shift": "int32"}
_POOL_ARRAYS = {"multiplier": "int32", "shift": "int32"}
_DUAL = {"weight2": "int8"}
# dilation (dh, dw) of conv2d / depthwise_conv2d, groups of conv2d (its weight is [O, kh, kw, I/groups])
_CONV_OPTIONAL = {"dilation": 2}
#: the value of an optional attr a QOp leaves out
OPTIONAL_ATTR_DEFAULTS = {"dilation": [1, 1], "groups": 1}

MAX_CONCAT_INPUTS = 64  # inputs of one concat op (ONNX allows any number)
A4_DSP_MAX_K = 16383  # larger K: q4_conv2d_s4_a4_dsp runs (and sizes scratch like) the 8-bit path
RESIZE_MODES = ("nearest", "bilinear")  # attr "mode" of a resize op is the index here
RESIZE_MAX_SCALE = 8  # integer up-sampling factor per axis, 1..8


def _without_simd(function: str, source: str, scratch, **kw) -> tuple[KernelVariant, ...]:
    """A kernel for cores without SIMD multiply-accumulate: the same C serves ARMv6-M (Cortex-M0/M0+,
    with inline assembly) and rv32imc (plain C)."""
    return tuple(KernelVariant(function, source, feature, scratch, **kw) for feature in ("armv6m", "rv32"))


def _mve_block(k: int, o: int) -> int:
    """Output channels per block of q4_conv2d_s4_mve: even, at least 16, more while their unpacked
    weights fit 9216 bytes."""
    return min(o + o % 2, max(16, (9216 // _round_up(k, 16)) & ~1))


_CONV2D_VARIANTS = (
    KernelVariant(
        "q4_conv2d_s4_mve",
        "convolution/q4_conv2d_s4_mve.c",
        "mve",
        lambda k, o: 16 * _mve_block(k, o) + (_mve_block(k, o) + 6) * _round_up(k, 16) + 16,
    ),
    KernelVariant(
        "q4_conv2d_s4_a4_dsp",
        "convolution/q4_conv2d_s4_dsp.c",
        "dsp",
        lambda k, o: 64 + 41 * _round_up(k, 8) if k > A4_DSP_MAX_K else 64 + 25 * _round_up(k, 8),
        max_input_bits=4,
    ),
    KernelVariant(
        "q4_conv2d_s4_dsp", "convolution/q4_conv2d_s4_dsp.c", "dsp", lambda k, o: 64 + 41 * _round_up(k, 8)
    ),
    *_without_simd(
        "q4_conv2d_s4_a4_armv6m",
        "convolution/q4_conv2d_s4_armv6m.c",
        lambda k, o: 32 + 17 * _round_up(k, 16),
        max_input_bits=4,
    ),
    *_without_simd(
        "q4_conv2d_s4_armv6m", "convolution/q4_conv2d_s4_armv6m.c", lambda k, o: 32 + 17 * _round_up(k, 16)
    ),
)
# the scratch of a multi-term variant covers any T = n_inputs * n_weights
_CONV2D_TERMS_VARIANTS = (
    KernelVariant(
        "q4_conv2d_s4_terms_mve",
        "convolution/q4_conv2d_s4_terms_mve.c",
        "mve",
        lambda k, o: 1936 + 42 * _round_up(k, 16),
    ),
    KernelVariant(
        "q4_conv2d_s4_terms_dsp",
        "convolution/q4_conv2d_s4_terms_dsp.c",
        "dsp",
        lambda k, o: 896 + 81 * _round_up(k, 8),
    ),
)
# depthwise: K = kh * kw * C and O = C here, so kh * kw = K // O
_DEPTHWISE_VARIANTS = (
    # 3x3 layers may take the row paths, whose scratch has a fixed size (7328 / 2008 bytes)
    KernelVariant(
        "q4_depthwise_conv2d_s4_mve",
        "convolution/q4_depthwise_conv2d_s4_mve.c",
        "mve",
        lambda k, o: max(12 * _round_up(o, 8) + (8 + _round_up(o, 8)) * (k // o), 7328 if k // o == 9 else 0),
    ),
    KernelVariant(
        "q4_depthwise_conv2d_s4_dsp",
        "convolution/q4_depthwise_conv2d_s4_dsp.c",
        "dsp",
        lambda k, o: (
            4 * _round_up(o, 4) + max((8 + 2 * _round_up(o, 4)) * (k // o), 2008 if k // o == 9 else 0)
        ),
    ),
    *_without_simd(
        "q4_depthwise_conv2d_s4_armv6m",
        "convolution/q4_depthwise_conv2d_s4_armv6m.c",
        lambda k, o: 4 * o + 4 * (k // o) + 4 * k,
    ),
)
# multi-term depthwise (any T = n_inputs * n_weights): 3x3 layers may take the row / plane paths,
# whose scratch has a fixed size (9408 / 5664 bytes)
_DEPTHWISE_TERMS_VARIANTS = (
    KernelVariant(
        "q4_depthwise_conv2d_s4_terms_mve",
        "convolution/q4_depthwise_conv2d_s4_terms_mve.c",
        "mve",
        lambda k, o: max(
            1408 + 8 * (k // o) + (36 + 2 * (k // o)) * _round_up(o, 8), 9408 if k // o == 9 else 0
        ),
    ),
    KernelVariant(
        "q4_depthwise_conv2d_s4_terms_dsp",
        "convolution/q4_depthwise_conv2d_s4_terms_dsp.c",
        "dsp",
        lambda k, o: max(1920 + 136 * (k // o), 5664 if k // o == 9 else 0),
    ),
)
_FC_VARIANTS = (
    KernelVariant(
        "q4_fully_connected_s4_mve",
        "fully_connected/q4_fully_connected_s4_mve.c",
        "mve",
        lambda k, o: _round_up(k, 32),
    ),
    KernelVariant(
        "q4_fully_connected_s4_dsp",
        "fully_connected/q4_fully_connected_s4_dsp.c",
        "dsp",
        lambda k, o: 2 * _round_up(k, 8),
    ),
    *_without_simd(
        "q4_fully_connected_s4_armv6m",
        "fully_connected/q4_fully_connected_s4_armv6m.c",
        lambda k, o: 4 * ((k + 1) // 2),
    ),
)
# the scratch of a multi-term variant covers any T = n_inputs * n_weights
_FC_TERMS_VARIANTS = (
    KernelVariant(
        "q4_fully_connected_s4_terms_mve",
        "fully_connected/q4_fully_connected_s4_terms_mve.c",
        "mve",
        lambda k, o: 2 * _round_up(k, 32),
    ),
    KernelVariant(
        "q4_fully_connected_s4_terms_dsp",
        "fully_connected/q4_fully_connected_s4_terms_dsp.c",
        "dsp",
        lambda k, o: 4 * _round_up(k, 8),
    ),
)
_GLOBAL_AVGPOOL_VARIANTS = (
    KernelVariant("q4_global_avgpool_s8_dsp", "pooling/q4_global_avgpool_s8_dsp.c", "dsp", lambda k, o: 0),
)
_ADD_VARIANTS = (
    KernelVariant("q4_add_s8_mve", "basic/q4_add_s8_mve.c", "mve", lambda k, o: 256),
    KernelVariant("q4_add_s8_dsp", "basic/q4_add_s8_dsp.c", "dsp", lambda k, o: 256),
)

# conv_transpose: K = kh * kw * I of the whole kernel (each phase's sub-kernel is no larger)
_CONV_TRANSPOSE_VARIANTS = (
    KernelVariant(
        "q4_conv_transpose_s4_mve",
        "convolution/q4_conv_transpose_s4_mve.c",
        "mve",
        lambda k, o: 16 + 22 * _round_up(k, 16),
    ),
    KernelVariant(
        "q4_conv_transpose_s4_dsp",
        "convolution/q4_conv_transpose_s4_dsp.c",
        "dsp",
        lambda k, o: 64 + 41 * _round_up(k, 8),
    ),
)

# resize: the portable signature, no scratch; nearest by word copies, bilinear runs the portable code
_RESIZE_VARIANTS = (KernelVariant("q4_resize_s8_dsp", "basic/q4_resize_s8_dsp.c", "dsp", lambda k, o: 0),)

# pooling (maxpool, avgpool), lut, mul, concat (docs/kernels.md, "Pooling, lut, mul and concat
# kernels"): the portable signatures; q4_lut_s8_a4_dsp (inputs of at most 4 bits) takes a
# 512-byte pair table
_MAXPOOL_VARIANTS = (
    KernelVariant("q4_maxpool_s8_mve", "pooling/q4_maxpool_s8_mve.c", "mve", lambda k, o: 0),
    KernelVariant("q4_maxpool_s8_dsp", "pooling/q4_maxpool_s8_dsp.c", "dsp", lambda k, o: 0),
)
_AVGPOOL_VARIANTS = (
    KernelVariant("q4_avgpool_s8_mve", "pooling/q4_avgpool_s8_mve.c", "mve", lambda k, o: 0),
    KernelVariant("q4_avgpool_s8_dsp", "pooling/q4_avgpool_s8_dsp.c", "dsp", lambda k, o: 0),
)
_LUT_VARIANTS = (
    KernelVariant("q4_lut_s8_mve", "activation/q4_lut_s8_mve.c", "mve", lambda k, o: 0),
    KernelVariant(
        "q4_lut_s8_a4_dsp", "activation/q4_lut_s8_dsp.c", "dsp", lambda k, o: 512, max_input_bits=4
    ),
    KernelVariant("q4_lut_s8_dsp", "activation/q4_lut_s8_dsp.c", "dsp", lambda k, o: 0),
)
_MUL_VARIANTS = (
    KernelVariant("q4_mul_s8_mve", "basic/q4_mul_s8_mve.c", "mve", lambda k, o: 0),
    KernelVariant("q4_mul_s8_dsp", "basic/q4_mul_s8_dsp.c", "dsp", lambda k, o: 0),
)
_CONCAT_VARIANTS = (
    KernelVariant("q4_concat_s8_mve", "basic/q4_concat_s8_mve.c", "mve", lambda k, o: 0),
    KernelVariant("q4_concat_s8_dsp", "basic/q4_concat_s8_dsp.c", "dsp", lambda k, o: 0),
)

# gather: the portable signature, no scratch (q4_gather.h declares the params)
_GATHER_VARIANTS = (
    KernelVariant("q4_gather_s8_mve", "basic/q4_gather_s8_mve.c", "mve", lambda k, o: 0),
    KernelVariant("q4_gather_s8_dsp", "basic/q4_gather_s8_dsp.c", "dsp", lambda k, o: 0),
)

# packed activations: conv2d and depthwise_conv2d variants share one signature, so one band kernel
_CONV_BAND = PackedBandKernel("q4_conv_band_p4")


def _weighted(kind: str, category: str, attrs: dict, float_ops: tuple[str, ...], **kw) -> OpSpec:
    base = f"{category}/q4_{kind}_s4"
    return OpSpec(
        kind,
        (1, 2),
        attrs,
        _CONV_ARRAYS,
        _DUAL,
        weighted=True,
        layer=True,
        float_ops=float_ops,
        kernel=f"{base}.c",
        terms_kernel=f"{base}_terms.c",
        packed_kernel=f"{base}_p4.c",
        packed_terms_kernel=f"{base}_terms_p4.c",
        **kw,
    )


def _elementwise(kind: str, category: str, inputs, attrs: dict, arrays: dict, float_ops, **kw) -> OpSpec:
    base = f"{category}/q4_{kind}"
    return OpSpec(
        kind,
        inputs,
        attrs,
        arrays,
        float_ops=float_ops,
        kernel=f"{base}_s8.c",
        packed_kernel=f"{base}_p4.c",
        **kw,
    )


OPS: dict[str, OpSpec] = {
    spec.kind: spec
    for spec in (
        _weighted(
            "conv2d",
            "convolution",
            _CONV_ATTRS,
            ("conv2d",),
            optional_attrs={**_CONV_OPTIONAL, "groups": 0},
            spatial=True,
            variants=_CONV2D_VARIANTS,
            terms_variants=_CONV2D_TERMS_VARIANTS,
            packed_band=_CONV_BAND,
            packed_band_terms=PackedBandKernel("q4_conv_terms_band_p4"),
        ),
        _weighted(
            "depthwise_conv2d",
            "convolution",
            _CONV_ATTRS,
            ("conv2d",),
            optional_attrs=dict(_CONV_OPTIONAL),
            spatial=True,
            variants=_DEPTHWISE_VARIANTS,
            terms_variants=_DEPTHWISE_TERMS_VARIANTS,
            packed_band=_CONV_BAND,
            packed_band_terms=PackedBandKernel("q4_conv_terms_band_p4"),
        ),
        _weighted(
            "fully_connected",
            "fully_connected",
            dict(_ACT),
            ("fully_connected",),
            variants=_FC_VARIANTS,
            terms_variants=_FC_TERMS_VARIANTS,
            packed_band=PackedBandKernel("q4_fc_band_p4"),
        ),
        _elementwise(
            "add",
            "basic",
            (2,),
            {"shift": 0, **_ACT},
            {"multiplier": "int32"},
            ("add",),
            layer=True,
            variants=_ADD_VARIANTS,
            packed_band=PackedBandKernel(
                "q4_add_table_p4", "basic/q4_add_table_p4.c", wraps_variant=False, scratch_bytes=512
            ),
        ),
        _elementwise(
            "avgpool",
            "pooling",
            (1,),
            {**_WINDOW, **_ACT},
            _POOL_ARRAYS,
            ("avgpool",),
            # count_pads present: the divisor is counted per window (docs/integer-spec.md, avgpool)
            optional_attrs={"count_pads": 4},
            layer=True,
            spatial=True,
            variants=_AVGPOOL_VARIANTS,
        ),
        _elementwise(
            "global_avgpool",
            "pooling",
            (1,),
            dict(_ACT),
            _POOL_ARRAYS,
            ("global_avgpool",),
            layer=True,
            spatial=True,
            variants=_GLOBAL_AVGPOOL_VARIANTS,
        ),
        _elementwise(
            "maxpool",
            "pooling",
            (1,),
            dict(_WINDOW),
            {},
            ("maxpool",),
            layer=True,
            spatial=True,
            same_quant=True,
            variants=_MAXPOOL_VARIANTS,
        ),
        _elementwise("clamp", "activation", (1,), dict(_ACT), {}, ("relu", "clamp"), same_quant=True),
        _elementwise("pad", "basic", (1,), {"pads": 4}, {}, ("pad",), spatial=True, same_quant=True),
        OpSpec("reshape", (1,), {}, {}, same_quant=True, aliases_input=True, float_ops=("reshape",)),
        # part 0 writes X1 (the coarse tensor), part 1 X2 (the residual) of a residual-quantized
        # activation held at 8 bits on the fine grid (docs/integer-spec.md, residual_split);
        # inserted by the quantizer, no float op lowers to it
        _elementwise("residual_split", "basic", (1,), {"part": 0, "coarse_zero_point": 0}, {}, ()),
        # y = table[x - qmin]: unary nonlinearities (sigmoid, tanh, hard-sigmoid, hard-swish, leaky
        # ReLU), one int8 entry per input code
        _elementwise(
            "lut",
            "activation",
            (1,),
            {},
            {"table": "int8"},
            ("unary",),
            header="include/q4_lut.h",
            variants=_LUT_VARIANTS,
        ),
        # the inputs' channel slices side by side (channels-last), each requantized to the output
        _elementwise(
            "concat",
            "basic",
            tuple(range(2, MAX_CONCAT_INPUTS + 1)),
            dict(_ACT),
            {"multiplier": "int32", "shift": "int32"},
            ("concat",),
            variants=_CONCAT_VARIANTS,
        ),
        # y = zy + requantize((a - za) * (b - zb), m, s): the product of two activations; b has a's
        # shape or one value per channel (1, 1, C), read for every pixel (squeeze-excite gates)
        _elementwise(
            "mul",
            "basic",
            (2,),
            dict(_ACT),
            {"multiplier": "int32", "shift": "int32"},
            ("mul",),
            layer=True,
            header="include/q4_elementwise.h",
            variants=_MUL_VARIANTS,
        ),
        # add / subtract: as add, but the multipliers are signed and b may be one value per channel
        # (1, 1, C) read for every pixel (Sub, and Add with broadcast)
        _elementwise(
            "addsub",
            "basic",
            (2,),
            {"shift": 0, **_ACT},
            {"multiplier": "int32"},
            ("sub",),
            layer=True,
            header="include/q4_elementwise.h",
        ),
        # y = table[c][x - qmin]: one table per channel c (the last axis): PReLU with a slope per channel
        _elementwise(
            "lut_channel",
            "activation",
            (1,),
            {},
            {"table": "int8"},
            ("prelu",),
            header="include/q4_elementwise.h",
        ),
        # transposed convolution (stride >= 1, pads, output padding)
        _weighted(
            "conv_transpose",
            "convolution",
            {**_CONV_ATTRS, "output_padding": 2},
            ("conv_transpose",),
            spatial=True,
            variants=_CONV_TRANSPOSE_VARIANTS,
            header="include/q4_conv_transpose.h",
        ),
        # up-sampling by integer factors: nearest (a copy) or bilinear (fixed rational weights)
        _elementwise(
            "resize",
            "basic",
            (1,),
            {"mode": 0, "scale": 2},
            {},
            ("resize",),
            spatial=True,
            same_quant=True,
            variants=_RESIZE_VARIANTS,
            header="include/q4_resize.h",
        ),
        # slices along one stored axis copied by a constant index table: channel shuffle, Slice,
        # Split, Gather (docs/integer-spec.md, gather)
        _elementwise(
            "gather",
            "basic",
            (1,),
            {"axis": 0},
            {"index": "int32"},
            ("gather",),
            same_quant=True,
            variants=_GATHER_VARIANTS,
            header="include/q4_gather.h",
        ),
        # the mean over the adjacent stored axes axes[0]..axes[1], kept as size 1
        _elementwise(
            "reduce_mean",
            "pooling",
            (1,),
            {"axes": 2, **_ACT},
            _POOL_ARRAYS,
            ("reduce_mean",),
            layer=True,
            header="include/q4_reduce_mean.h",
        ),
        # softmax along one stored axis: exp by a table over (max - x), one integer division per
        # element (docs/integer-spec.md, softmax)
        _elementwise(
            "softmax",
            "activation",
            (1,),
            {"axis": 0, "steps": 0},
            {"table": "int32"},
            ("softmax",),
            header="include/q4_softmax.h",
        ),
    )
}

#: every integer op kind, in table order
QOP_KINDS = tuple(OPS)
#: kinds whose output reuses the input's quantization parameters
SAME_QUANT_KINDS = tuple(k for k, s in OPS.items() if s.same_quant)
#: kinds with INT4 weights (conv / dense layers)
WEIGHTED_KINDS = tuple(k for k, s in OPS.items() if s.weighted)
#: kinds counted as layers in reports
LAYER_KINDS = tuple(k for k, s in OPS.items() if s.layer)


def attr(op, name: str):
    """An attr of ``op``, or its default (``OPTIONAL_ATTR_DEFAULTS``) when the op leaves it out."""
    return op.attrs[name] if name in op.attrs else OPTIONAL_ATTR_DEFAULTS[name]


def is_multi_term(kind: str, n_inputs: int, arrays) -> bool:
    """True for a weighted op with a second input or a second weight (``weight2``)."""
    return OPS[kind].weighted and (n_inputs > 1 or "weight2" in arrays)
