"""C code generator: a QModel -> freestanding C99 sources that call the q4 runtime kernels.

``generate`` writes ``<name>.h`` (the API), ``<name>.c`` (the op calls and the static arena),
``<name>_weights.c`` (const tables) and ``q4_runtime/`` (the kernel headers and only the kernel
sources the model uses). The generator holds no arithmetic of its own: every number comes from the
QModel; it lays out the tables (INT4 packing) and places the tensors in the arena (``q4sdk.codegen.arena``). Output is deterministic: identical models give
identical bytes.

Each op call in ``<name>_run`` sits between ``Q4_PROFILE_BEGIN(i)`` and ``Q4_PROFILE_END(i)``, empty
macros unless the build defines ``Q4_PROFILE`` (then ``q4_profile.h``, supplied by the firmware,
defines them; see ``q4sdk.targets.project``).

The model is validated first (``q4sdk.ir.validate``). Each op's call is spelled by its template
``templates/ops/<kind>.c.j2`` from the arguments ``q4sdk.codegen.op_args`` builds; the kernel it
calls is chosen by ``q4sdk.codegen.kernels`` (portable, packed, or an optimised variant).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import numpy as np

from q4sdk.codegen.arena import band_floor, packed_tensors, plan_arena, plan_bands
from q4sdk.codegen.c_syntax import C_KEYWORDS, c_comment, c_float, c_identifier, c_string, unique_identifiers
from q4sdk.codegen.kernels import (
    OPT_HEADER,
    OPT_PRIVATE_HEADERS,
    PACKED_HEADER,
    RUNTIME_HEADERS,
    kernel_source,
    packed_source,
    pointwise_as_fc,
    portable_function,
    select_kernel,
    select_packed,
)
from q4sdk.codegen.op_args import op_template_args
from q4sdk.codegen.output_tree import write_files
from q4sdk.errors import Q4Error
from q4sdk.ir.limits import check_limits
from q4sdk.ir.ops import OPS
from q4sdk.ir.qmodel import QModel
from q4sdk.ir.validate import validate_model
from q4sdk.resources import RUNTIME_DIR, TEMPLATE_DIR

if TYPE_CHECKING:
    from q4sdk.targets.boards import Board

RUNTIME_SUBDIR = "q4_runtime"


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass
class OpReport:
    name: str
    kind: str
    macs: int
    weight_bytes: int
    kernel: str = ""  # the C function the op calls ("" for reshape)


@dataclass
class GenerateReport:
    name: str
    files: list[Path]
    weight_bytes: int  # packed weights + bias + multiplier + shift tables
    arena_bytes: int
    peak_op: str | None  # op whose live tensors need the most arena bytes
    peak_live_bytes: int
    ops: list[OpReport] = field(default_factory=list)
    packed_activations: bool = False  # 4-bit tensors stored two per byte (pack_activations)
    arena_bytes_unpacked: int = 0  # the arena with one byte per element (= arena_bytes unpacked)
    scratch_bytes: int = 0  # static scratch of the optimised kernels (0 with portable ones)
    kernel_sources: list[str] = field(default_factory=list)  # runtime sources copied (file names)

    @property
    def macs(self) -> int:
        return sum(o.macs for o in self.ops)

    @property
    def arena_summary(self) -> str:
        """The arena size as the tools print it, with the unpacked figure when packed."""
        if not self.packed_activations:
            return f"{self.arena_bytes:,} bytes"
        return f"{self.arena_bytes:,} bytes (packed 4-bit; {self.arena_bytes_unpacked:,} bytes unpacked)"


# --------------------------------------------------------------------------- generate


def template_environment(folder: Path = TEMPLATE_DIR) -> jinja2.Environment:
    """The Jinja2 environment of the generated files' templates in ``folder`` (strict, no escaping)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or name in C_KEYWORDS:
        raise Q4Error(f"generate: name '{name}' is not a usable C identifier (try '{c_identifier(name)}')")


@dataclass
class _OpCalls:
    """The op calls of a model: template arguments, report rows, runtime sources, scratch."""

    ops: list[dict] = field(default_factory=list)
    reports: list[OpReport] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    scratch_bytes: int = 0
    any_variant: bool = False


def _op_calls(
    model: QModel,
    name: str,
    offsets: dict[str, int],
    packed: frozenset[str],
    target: "Board | None",
    kernels: str,
) -> _OpCalls:
    """Each op's template arguments with the kernel it calls (packed, portable or a variant)."""
    calls = _OpCalls()
    bands = []  # (args, PackedCall) of the packed ops that run a fast kernel
    for op, sym in zip(model.ops, unique_identifiers([op.name for op in model.ops])):
        args, macs = op_template_args(model, op, f"{name}_{sym}", offsets)
        op_packed = OPS[op.kind].kernel is not None and bool(packed & {*op.inputs, op.output})
        as_fc = None if op_packed else pointwise_as_fc(op, args, target, kernels)
        args["pixel_fc"] = as_fc is not None  # a 1x1 conv2d as one fc call per output pixel
        kernel_op = as_fc or op  # the op whose kernel it calls
        variant = None if op_packed else select_kernel(kernel_op, args, target, kernels)
        fast = None
        if op_packed:
            args["in_bits"] = [4 if t in packed else 8 for t in op.inputs]
            args["out_bits"] = 4 if op.output in packed else 8
            fast = select_packed(
                op, args, [t in packed for t in op.inputs], op.output in packed, target, kernels
            )
        if fast is not None:
            function, calls.any_variant = fast.band.function, calls.any_variant or fast.variant is not None
            calls.sources |= fast.sources(op)
            bands.append((args, fast))
        elif op_packed:
            source = packed_source(op)
            function = Path(source).stem
            calls.sources.add(source)
        elif variant is None:
            function = portable_function(kernel_op)
            calls.sources.add(kernel_source(kernel_op))
        else:
            function, calls.any_variant = variant.function, True
            calls.sources |= {variant.source, kernel_source(kernel_op)}  # the variant's fallback
            variant_scratch = variant.scratch_bytes(
                int(np.prod(args.get("filter_dims", (0,)))), args["out_dims"][2] if "out_dims" in args else 0
            )
            calls.scratch_bytes = max(calls.scratch_bytes, variant_scratch)
        args["function"], args["scratch"] = function, variant is not None and variant_scratch > 0
        args["packed"], args["band_args"] = op_packed, ""
        calls.ops.append(args)
        calls.reports.append(
            OpReport(op.name, op.kind, macs, sum(t["bytes"] for t in args["tables"]), function)
        )
    # packed bands (arena.plan_bands): as many rows as the shared scratch holds
    ram = target.ram.size if target is not None and target.ram is not None else None
    rows = plan_bands(
        [(fast.kernel_scratch, fast.staging, fast.out_rows) for _, fast in bands],
        calls.scratch_bytes,
        band_floor(ram),
    )
    for (args, fast), n in zip(bands, rows):
        calls.scratch_bytes = max(calls.scratch_bytes, fast.kernel_scratch + fast.staging(n))
        args["scratch"], args["band_args"] = True, fast.arguments(n)
    calls.sources.discard(None)
    return calls


def _io_args(model: QModel, offsets: dict[str, int], packed: frozenset[str]) -> dict:
    """Template arguments of the model's input, output, residual input and debug dumps."""
    in_t, out_t = model.input_tensor, model.output_tensor
    res_name = model.meta.get("input_residual")
    res_t = model.tensors[res_name] if res_name else None
    layout = model.meta.get("input_layout", "NCHW")
    dumps, dump_offset = [], 0  # the residual input tensor, if any, is dumped last
    for tensor in [model.input] + [op.output for op in model.ops] + ([res_name] if res_name else []):
        size = model.tensors[tensor].size
        dumps.append(
            {
                "literal": c_string(tensor),
                "dump_offset": dump_offset,
                "size": size,
                "packed": tensor in packed,
            }
        )
        dump_offset += size
    float_shape = (
        (in_t.shape[2], in_t.shape[0], in_t.shape[1])
        if (layout == "NCHW" and len(in_t.shape) == 3)
        else tuple(in_t.shape)
    )
    return {
        "dumps": dumps,
        "dump_size": dump_offset,
        "input_shape": [int(d) for d in in_t.shape],
        "input_size": in_t.size,
        "input_scale": c_float(in_t.scale),
        "input_scale_comment": f"{in_t.scale:.9g}",
        "inv_scale": c_float(1.0 / in_t.scale),
        "input_zp": in_t.zero_point,
        "input_bits": in_t.bits,
        "input_qmin": in_t.qmin,
        "input_qmax": in_t.qmax,
        "output_shape": [int(d) for d in out_t.shape],
        "output_size": out_t.size,
        "output_scale": c_float(out_t.scale),
        "output_scale_comment": f"{out_t.scale:.9g}",
        "output_zp": out_t.zero_point,
        "output_bits": out_t.bits,
        "input_layout": layout,
        "float_shape_comment": "x[" + "][".join(map(str, float_shape)) + "]",
        "transpose_input": layout == "NCHW" and len(in_t.shape) == 3,
        "input_offset": offsets[model.input],
        "output_offset": offsets[model.output],
        "input_comment": c_comment(model.input),
        "output_comment": c_comment(model.output),
        "input_packed": model.input in packed,
        "output_packed": model.output in packed,
        "residual_packed": res_name in packed,
        "residual": None
        if res_t is None
        else {
            "offset": offsets[res_name],
            "comment": c_comment(res_name),
            "dump_index": len(model.ops) + 1,
            "zp": res_t.zero_point,
            "qmin": res_t.qmin,
            "qmax": res_t.qmax,
            "scale": c_float(res_t.scale),
            "scale_comment": f"{res_t.scale:.9g}",
            "error_factor": c_float(1 << in_t.bits),
        },
    }


def render(
    model: QModel,
    name: str,
    target: "Board | None" = None,
    kernels: str = "portable",
    pack_activations: bool = False,
) -> tuple[dict[str, str], GenerateReport]:
    """Render the generated files in memory: ({relative path: text}, report without files).

    ``target`` and ``kernels`` choose the kernel variant of each op (see ``select_kernel``).
    ``pack_activations`` stores every tensor of at most 4 bits packed two per byte
    (``arena.packed_tensors``; Q4Error if another tensor than the output is wider); ops touching a
    packed tensor then call the ``*_p4`` portable kernels. The C API keeps int8 buffers.
    """
    _check_name(name)
    check_limits(model, c_name=name)  # first: validate_model relies on the types it checks
    validate_model(model, any_second_input=True)
    packed = packed_tensors(model) if pack_activations else frozenset()
    plan = plan_arena(model, packed)
    arena_unpacked = plan_arena(model).size if packed else plan.size
    calls = _op_calls(model, name, plan.offsets, packed, target, kernels)
    weight_bytes = sum(r.weight_bytes for r in calls.reports)
    op_headers = sorted(
        {OPS[op.kind].header for op in model.ops} - {None}
    )  # kinds with a header of their own
    ctx = {
        "name": name,
        "NAME": name.upper(),
        "model_name_comment": c_comment(model.name),
        "ops": calls.ops,
        "arena_size": max(plan.size, 1),
        "weight_bytes": weight_bytes,
        "peak_op_comment": c_comment(plan.peak_op or "-"),
        "scratch_words": _round_up(calls.scratch_bytes, 4) // 4,
        "optimised": calls.scratch_bytes > 0,
        "any_variant": calls.any_variant,
        "packed_any": bool(packed),
        "arena_unpacked_size": arena_unpacked,
        "op_headers": [Path(h).name for h in op_headers],
        **_io_args(model, plan.offsets, packed),
    }
    env = template_environment()
    files = {
        f"{name}.h": env.get_template("model.h.j2").render(ctx),
        f"{name}.c": env.get_template("model.c.j2").render(ctx),
        f"{name}_weights.c": env.get_template("weights.c.j2").render(ctx),
    }
    headers = (
        RUNTIME_HEADERS
        + ((OPT_HEADER,) + OPT_PRIVATE_HEADERS if calls.any_variant else ())
        + ((PACKED_HEADER,) if packed else ())
        + tuple(op_headers)
    )
    for header in headers:
        files[f"{RUNTIME_SUBDIR}/{Path(header).name}"] = (RUNTIME_DIR / header).read_text()
    for src in sorted(calls.sources):
        files[f"{RUNTIME_SUBDIR}/{Path(src).name}"] = (RUNTIME_DIR / "src" / src).read_text()
    report = GenerateReport(
        name=name,
        files=[],
        weight_bytes=weight_bytes,
        arena_bytes=plan.size,
        peak_op=plan.peak_op,
        peak_live_bytes=plan.peak_live_bytes,
        ops=calls.reports,
        scratch_bytes=_round_up(calls.scratch_bytes, 4),
        kernel_sources=sorted(Path(src).name for src in calls.sources),
        packed_activations=bool(packed),
        arena_bytes_unpacked=arena_unpacked,
    )
    return files, report


def generate(
    model: QModel,
    out_dir,
    name: str,
    *,
    overwrite: bool = False,
    target: "Board | None" = None,
    kernels: str = "portable",
    pack_activations: bool = False,
) -> GenerateReport:
    """Write the C sources of ``model`` into ``out_dir`` (created if needed).

    ``target`` (a Board) with ``kernels="optimised"`` lets ops call the board's optimised kernel
    variants (``select_kernel``); the default is the portable kernels everywhere.
    ``pack_activations`` stores 4-bit activations two per byte (about half the arena; see
    ``render``).
    Raises Q4Error for a model the kernels cannot run (naming the op) and, unless ``overwrite``,
    when a generated file already exists. Files are rendered into a temporary directory first, so
    a failure never leaves half an output.
    """
    out_dir = Path(out_dir)
    files, report = render(model, name, target, kernels, pack_activations)
    write_files(files, out_dir, overwrite)
    report.files = [out_dir / rel for rel in sorted(files)]
    return report
