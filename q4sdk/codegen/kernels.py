"""Which C kernel each op calls: portable, multi-term, packed 4-bit, or an optimised variant.

The kernel sources and variants of every op kind are in the op table (``q4sdk.ir.ops.OPS``). By
default every op calls its portable kernel. With ``kernels="optimised"`` and a target board,
``select_kernel`` picks an architecture-specific variant (``runtime_c/include/q4_kernels_opt.h``)
when the board has the extension, the op's shape is within the variant's limits and its source file
exists; its scratch buffer is a static array sized by the variant's ``scratch_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from q4sdk.codegen.arena import band_staging_bytes
from q4sdk.errors import Q4Error
from q4sdk.ir.ops import OPS, KernelVariant, PackedBandKernel, is_multi_term
from q4sdk.ir.qmodel import QOp
from q4sdk.resources import RUNTIME_DIR

if TYPE_CHECKING:
    from q4sdk.targets.boards import Board

RUNTIME_HEADERS = ("include/q4_kernels.h", "include/q4_fixedpoint.h")
# Packed activations (``pack_activations``): ops touching a packed tensor call the portable *_p4
# kernels (runtime_c/include/q4_packed.h), or with optimised kernels the kind's packed band kernel
# around its variant (``select_packed``).
PACKED_HEADER = "include/q4_packed.h"
OPT_HEADER = "include/q4_kernels_opt.h"
# included by the variants' sources
OPT_PRIVATE_HEADERS = (
    "include/internal/q4_dsp.h",
    "include/internal/q4_conv_dsp.h",
    "include/internal/q4_conv_terms.h",
    "include/internal/q4_armv6m.h",
    "include/internal/q4_conv_mve.h",
    "include/internal/q4_fc_dsp.h",
    "include/internal/q4_depthwise_dsp.h",
    "include/internal/q4_depthwise_mve.h",
    "include/internal/q4_conv_transpose_phase.h",
)
OPT_MAX_K = 65536  # Q4_OPT_MAX_K
KERNEL_CHOICES = ("portable", "optimised")

#: kind -> optimised variants of the single-term kernel, in order of preference (from OPS)
KERNEL_VARIANTS: dict[str, tuple[KernelVariant, ...]] = {k: s.variants for k, s in OPS.items() if s.variants}
#: kind -> optimised variants of the multi-term (*_terms) kernel (from OPS)
TERMS_VARIANTS: dict[str, tuple[KernelVariant, ...]] = {
    k: s.terms_variants for k, s in OPS.items() if s.terms_variants
}


def _multi_term(op: QOp) -> bool:
    return is_multi_term(op.kind, len(op.inputs), op.arrays)


def kernel_source(op: QOp) -> str | None:
    """The portable runtime source file an op needs (None for reshape)."""
    spec = OPS[op.kind]
    return spec.terms_kernel if _multi_term(op) else spec.kernel


def portable_function(op: QOp) -> str:
    """The portable kernel function an op calls ("" for reshape)."""
    source = kernel_source(op)
    return "" if source is None else Path(source).stem


def packed_source(op: QOp) -> str:
    """The packed-activation kernel source of an op; Q4Error naming the op if its kind has none."""
    spec = OPS[op.kind]
    source = spec.packed_terms_kernel if _multi_term(op) else spec.packed_kernel
    if source is None:
        raise Q4Error(
            f"op '{op.name}' ({op.kind}): no kernel for packed 4-bit activations; "
            "generate without pack_activations"
        )
    return source


def select_kernel(op: QOp, args: dict, target: "Board | None", kernels: str) -> KernelVariant | None:
    """The optimised variant ``op`` calls on ``target``, or None for its portable kernel.

    ``args`` are the op's template arguments (``filter_dims``, ``input_bits``). A variant is used
    only with ``kernels="optimised"`` (from the kind's ``terms_variants`` for a multi-term op, else
    its ``variants``), when the board has the variant's extension, K is within ``OPT_MAX_K``, the
    op's input has at most the variant's ``max_input_bits`` and the variant's source is present;
    the first such variant in table order wins (MVE, then the 4-bit-activation DSP kernel, then DSP).
    Dilated, grouped and channel-multiplier convolutions always run the portable kernel, and so do
    depthwise layers on one output pixel that the DSP kernel runs slower (``_depthwise_portable_faster``).
    """
    if kernels not in KERNEL_CHOICES:
        raise Q4Error(f"generate: kernels must be one of {', '.join(KERNEL_CHOICES)}, got '{kernels}'")
    if kernels == "portable" or target is None:
        return None
    if not (RUNTIME_DIR / OPT_HEADER).is_file():
        return None
    spec = OPS[op.kind]
    k = int(np.prod(args["filter_dims"])) if "filter_dims" in args else 0
    k_ok = 0 < k <= OPT_MAX_K if spec.weighted else True
    if not _dense_window(op, args):
        return None
    for variant in spec.terms_variants if _multi_term(op) else spec.variants:
        if variant.requires == "dsp" and _depthwise_portable_faster(op, args):
            continue
        if (
            getattr(target, variant.requires)
            and k_ok
            and args["input_bits"] <= variant.max_input_bits
            and (RUNTIME_DIR / "src" / variant.source).is_file()
        ):
            return variant
    return None


def _depthwise_portable_faster(op: QOp, args: dict) -> bool:
    """True for a depthwise_conv2d layer with one output pixel whose window is mostly padding,
    which the portable kernel runs faster than the DSP one (it skips the taps outside the input;
    the DSP kernel's per-call set-up has one pixel to pay for it): every multi-term one, and a
    single-term one whose window is at least 4 times its input map (3x3 on 1x1, 5x5 on 2x2).
    Measured on the Cortex-M4 with benchmarks/mcu_small_maps.py (docs/kernels.md, "Small feature
    maps")."""
    if op.kind != "depthwise_conv2d" or args["out_dims"][0] * args["out_dims"][1] != 1:
        return False
    h, w, _ = args["in_dims"]
    kh, kw, _ = args["filter_dims"]
    return _multi_term(op) or kh * kw >= 4 * h * w


def _dense_window(op: QOp, args: dict) -> bool:
    """True unless the op is a dilated or grouped convolution or a depthwise one with a channel
    multiplier: the optimised variants run only adjacent taps, groups=1 and multiplier 1."""
    if "dilation" in op.attrs and list(op.attrs["dilation"]) != [1, 1]:
        return False
    if op.kind == "conv2d":
        return args["filter_dims"][2] == args["in_dims"][2]
    if op.kind == "depthwise_conv2d":
        return args["out_dims"][2] == args["in_dims"][2]
    return True


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class PackedCall:
    """A packed op's fast kernel: the band kernel, the variant it runs (None: a native packed
    kernel), the scratch that variant (or the native kernel) needs first in the shared scratch
    (a multiple of 16 bytes), and the staging bytes a band of ``rows`` output rows takes after it."""

    band: PackedBandKernel
    variant: KernelVariant | None
    kernel_scratch: int
    staging: Callable[[int], int]
    out_rows: int  # output rows a band may span (1: the op is one band)

    def sources(self, op: QOp) -> set[str]:
        """The runtime sources the call needs: the band kernel, the variant and its portable
        fallback (or the packed kernel a native one falls back to)."""
        if self.variant is None:
            return {self.band.source, packed_source(op)}
        return {self.band.source, self.variant.source, kernel_source(op)}

    def arguments(self, rows: int) -> str:
        """The C arguments after ``scratch`` for bands of ``rows`` rows."""
        if self.variant is None:
            return ""
        if self.out_rows > 1 or self.band.function != "q4_fc_band_p4":
            return f"{self.variant.function}, {rows}, {self.kernel_scratch}"
        return f"{self.variant.function}, {self.kernel_scratch}"


def select_packed(
    op: QOp, args: dict, in_packed: list[bool], out_packed: bool, target: "Board | None", kernels: str
) -> PackedCall | None:
    """The fast kernel of an op that touches packed tensors, or None for its portable ``*_p4``.

    Only with ``kernels="optimised"``, a target board, and a kind whose ``packed_band`` (or
    ``packed_band_terms``) kernel exists where the board has one of the kind's optimised variants
    (``select_kernel``); a native packed kernel (add) needs every tensor it touches packed.
    """
    spec = OPS[op.kind]
    band = spec.packed_band_terms if _multi_term(op) else spec.packed_band
    if band is None or not (RUNTIME_DIR / "src" / band.source).is_file():
        return None
    variant = select_kernel(op, args, target, kernels)
    if variant is None:
        return None
    if not band.wraps_variant:
        if not (all(in_packed) and out_packed):
            return None
        return PackedCall(band, None, _round_up(band.scratch_bytes, 16), lambda rows: 0, 1)
    k = int(np.prod(args["filter_dims"]))
    kernel_scratch = _round_up(variant.scratch_bytes(k, args["out_dims"][2]), 16)
    n_packed = sum(in_packed)
    if "in_dims" in args:  # conv2d, depthwise_conv2d
        in_dims, out_dims = args["in_dims"], args["out_dims"]
        kh, stride_h = args["filter_dims"][0], args["stride"][0]
        return PackedCall(
            band,
            variant,
            kernel_scratch,
            lambda rows: band_staging_bytes(in_dims, kh, stride_h, out_dims, n_packed, out_packed, rows),
            out_dims[0],
        )
    in_size, out_size = args["in_size"], args["out_size"]  # fully_connected: one band
    staging = (in_size if n_packed else 0) + (out_size if out_packed else 0)
    return PackedCall(band, variant, kernel_scratch, lambda rows: staging, 1)


# --------------------------------------------------------------------------- 1x1 conv as fc calls

#: when a 1x1 conv2d runs as one fully_connected call per output pixel, by the feature of the fc
#: variant the board would call ("": the portable kernel): (min K, max pixels) rows, the first row
#: whose min K the layer's K = I reaches gives the most output pixels. Measured on mps2-an386,
#: mps3-an547, microbit-264k and rv32imc with benchmarks/mcu_small_maps.py (docs/kernels.md,
#: "Small feature maps"): below it the conv kernel's per-call set-up (the DSP / Helium / ARMv6-M
#: conv unpacks every weight once per call) costs more than the fc kernel's per-pixel one.
POINTWISE_FC_MAX_PIXELS: dict[str, tuple[tuple[int, int], ...]] = {
    "dsp": ((32, 4), (0, 2)),
    "mve": ((0, 2),),
    "armv6m": ((0, 2),),
    "rv32": ((0, 2),),
    "": ((0, 16),),
}


def _fc_max_pixels(feature: str, k: int) -> int:
    return next((pixels for min_k, pixels in POINTWISE_FC_MAX_PIXELS[feature] if k >= min_k), 0)


def pointwise_as_fc(op: QOp, args: dict, target: "Board | None", kernels: str) -> QOp | None:
    """The fully_connected op a 1x1 conv2d runs as, one call per output pixel, or None.

    A conv2d qualifies when its window is 1x1, it has no padding and one group (its weight rows
    [O, 1, 1, I] are then the fc rows [O, I] and each output pixel is the fc of one input pixel,
    contiguous in channels-last storage; stride only picks the pixels), and its output has at
    most the pixels ``POINTWISE_FC_MAX_PIXELS`` gives for its K and the fc variant ``target``
    would call. The requantization of the two kinds is the same per-channel rule
    (docs/integer-spec.md §4), so the result is bit-exact; the returned op shares the conv's
    arrays, reshaped, and is only used to choose the kernel (``select_kernel``,
    ``kernel_source``). Packed layers are not routed (``render._op_calls``).
    """
    if op.kind != "conv2d" or list(args["pads"]) != [0, 0, 0, 0]:
        return None
    kh, kw, ci = args["filter_dims"]
    ho, wo, o = args["out_dims"]
    if (kh, kw) != (1, 1) or ci != args["in_dims"][2]:
        return None
    arrays = dict(op.arrays)
    for key in ("weight", "weight2"):
        if key in arrays:
            arrays[key] = np.asarray(arrays[key]).reshape(o, ci)
    attrs = {key: op.attrs[key] for key in ("act_min", "act_max")}
    fc = QOp(op.name, "fully_connected", list(op.inputs), op.output, attrs, arrays)
    variant = select_kernel(fc, args, target, kernels)
    limit = _fc_max_pixels(variant.requires if variant is not None else "", ci)
    return fc if ho * wo <= limit else None
