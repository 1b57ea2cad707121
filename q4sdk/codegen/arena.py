"""Arena planner: where every activation tensor lives in one static RAM buffer.

A tensor is live from the op that writes it to the last op that reads it (the model input -- and,
for a residual-quantized input, its second tensor ``meta["input_residual"]`` -- from before the
first op, the model output until after the last one). An op reads its inputs and writes
its output at the same time, so those always get disjoint bytes. A ``reshape`` output shares the
bytes of its input (same values, same order), so the two form one buffer.

With packed activations (``packed_tensors``) a tensor of at most 4 bits takes ceil(n / 2) bytes,
two elements per byte (``docs/integer-spec.md``, "Packed activation storage"); others one byte per
element.

Buffers are placed TFLM-style: in a chosen order, each at the lowest 16-byte aligned offset that
overlaps no already placed buffer whose lifetime intersects its own. Several orders are tried
(largest first, execution order, and -- when at most two buffers are ever live -- a ping-pong
layout that is optimal for chains) and the smallest arena wins. The result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from q4sdk.errors import Q4Error
from q4sdk.ir.ops import OPS
from q4sdk.ir.qmodel import QModel

ALIGN = 16


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Buffer:
    """One arena buffer: a tensor, or a tensor with the reshapes that alias it."""

    tensors: tuple[str, ...]
    size: int  # bytes, before alignment
    first: int  # index of the op that writes it (-1: the model input)
    last: int  # index of the last op that reads it (len(ops): the model output)

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class ArenaPlan:
    """Offsets of every tensor in the arena and the figures the user sees."""

    offsets: dict[str, int]  # tensor name -> byte offset (16-byte aligned)
    size: int  # arena bytes (a multiple of 16)
    peak_op: str | None  # op whose live tensors need the most bytes (None: no ops)
    peak_live_bytes: int  # aligned bytes live during peak_op: a lower bound for `size`
    live_bytes: list[int]  # per op (in order): aligned bytes live while it runs


def input_tensors(model: QModel) -> list[str]:
    """The tensors the caller supplies: the input, then its residual tensor if the model has one."""
    residual = model.meta.get("input_residual")
    return [model.input, residual] if residual else [model.input]


def storage_bytes(elements: int, packed: bool) -> int:
    """Arena bytes of a tensor of ``elements`` values: one per byte, or two per byte packed."""
    return (elements + 1) // 2 if packed else elements


def _fine_grid_tensors(model: QModel) -> set[str]:
    """The 8-bit fine-grid tensors of residual-quantized activations (``meta
    ["residual_activations"]`` and the tensors residual_split ops read), with the tensors
    reshapes/pads/max-pools/clamps derive from them keeping their quantization."""
    fine = set(model.meta.get("residual_activations", []))
    fine |= {i for op in model.ops if op.kind == "residual_split" for i in op.inputs}
    for op in reversed(model.ops):  # back from a split's input to the op that requantized
        if op.output in fine and OPS[op.kind].same_quant:
            fine.add(op.inputs[0])
    for op in model.ops:  # and forward to everything that keeps that quantization
        if op.inputs and op.inputs[0] in fine and OPS[op.kind].same_quant:
            fine.add(op.output)
    return fine


def packed_tensors(model: QModel) -> frozenset[str]:
    """The tensors stored packed at 4 bits when packing is asked for: every tensor of at most
    4 bits. Q4Error unless all tensors but the model output and the 8-bit fine-grid tensors of
    residual-quantized activations have at most 4 bits (those stay one per byte), or when a reshape
    would alias a packed tensor with an unpacked one."""
    names = [*input_tensors(model), *(op.output for op in model.ops)]
    fine = _fine_grid_tensors(model)
    for name in names:
        t = model.tensors.get(name)
        if t is not None and t.bits > 4 and name != model.output and name not in fine:
            raise Q4Error(
                f"pack_activations: tensor '{name}' has {t.bits}-bit activations; packed "
                "storage needs every tensor but the model output at <= 4 bits "
                "(quantize with 4-bit activations, or generate without packing)"
            )
    packed = frozenset(n for n in names if n in model.tensors and model.tensors[n].bits <= 4)
    for op in model.ops:
        if OPS[op.kind].aliases_input and op.inputs and (op.inputs[0] in packed) != (op.output in packed):
            raise Q4Error(
                f"op '{op.name}' ({op.kind}): input and output must both be <= 4 bits "
                "(packed) or both wider: a reshape shares its input's bytes"
            )
    return packed


def buffers_of(model: QModel, packed: frozenset[str] = frozenset()) -> list[Buffer]:
    """Group tensors into buffers (reshape aliasing) with their lifetimes; tensors in ``packed``
    take half a byte per element."""
    n = len(model.ops)
    root: dict[str, str] = {}
    produced_at: dict[str, int] = {}
    for name in input_tensors(model):
        if name not in model.tensors:
            raise Q4Error(f"model '{model.name}': input tensor '{name}' is not in the tensor table")
        root[name], produced_at[name] = name, -1
    for i, op in enumerate(model.ops):
        for name in op.inputs:
            if name not in produced_at:
                raise Q4Error(
                    f"op '{op.name}' ({op.kind}): input tensor '{name}' is not produced by an earlier op"
                )
        if op.output not in model.tensors:
            raise Q4Error(
                f"op '{op.name}' ({op.kind}): output tensor '{op.output}' is not in the tensor table"
            )
        if op.output in produced_at:
            raise Q4Error(f"op '{op.name}' ({op.kind}): tensor '{op.output}' is written twice")
        produced_at[op.output] = i
        root[op.output] = root[op.inputs[0]] if OPS[op.kind].aliases_input else op.output
    if model.output not in produced_at:
        raise Q4Error(f"model '{model.name}': output tensor '{model.output}' is never produced")

    members: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for name, r in root.items():
        members.setdefault(r, []).append(name)
        first[r] = min(first.get(r, n), produced_at[name])
        last[r] = max(last.get(r, -1), produced_at[name])
    for i, op in enumerate(model.ops):
        for name in op.inputs:
            last[root[name]] = max(last[root[name]], i)
    last[root[model.output]] = n
    return [
        Buffer(
            tuple(members[r]),
            max(storage_bytes(model.tensors[t].size, t in packed) for t in members[r]),
            first[r],
            last[r],
        )
        for r in members
    ]


def _first_fit(order: list[Buffer]) -> dict[Buffer, int]:
    placed: dict[Buffer, int] = {}
    for buf in order:
        busy = sorted((placed[o], placed[o] + _align(o.size)) for o in placed if o.overlaps_in_time(buf))
        offset = 0
        for start, end in busy:
            if offset + _align(buf.size) <= start:
                break
            offset = max(offset, end)
        placed[buf] = offset
    return placed


def _ping_pong(buffers: list[Buffer], bound: int) -> dict[Buffer, int] | None:
    """Chains: alternate buffers between the bottom and the top of a `bound`-byte arena."""
    side: dict[Buffer, int] = {}
    placed: dict[Buffer, int] = {}
    for buf in sorted(buffers, key=lambda b: (b.first, b.last)):
        rivals = [o for o in side if o.overlaps_in_time(buf)]
        if len(rivals) > 1 or len({side[o] for o in rivals}) > 1:
            return None
        side[buf] = 1 - side[rivals[0]] if rivals else 0
        placed[buf] = 0 if side[buf] == 0 else bound - _align(buf.size)
    return placed


def _live_bytes(model: QModel, buffers: list[Buffer]) -> list[int]:
    return [sum(_align(b.size) for b in buffers if b.first <= i <= b.last) for i in range(len(model.ops))]


def plan_arena(model: QModel, packed: frozenset[str] = frozenset()) -> ArenaPlan:
    """Plan the arena of ``model`` (tensors in ``packed`` stored two per byte); raises Q4Error
    when the op list is not a valid program."""
    buffers = buffers_of(model, packed)
    live = _live_bytes(model, buffers)
    peak = max(range(len(live)), key=lambda i: live[i]) if live else None  # first of equals
    bound = live[peak] if peak is not None else sum(_align(b.size) for b in buffers)

    candidates = [
        _first_fit(sorted(buffers, key=lambda b: (-b.size, b.first, b.tensors))),
        _first_fit(sorted(buffers, key=lambda b: (b.first, -b.size, b.tensors))),
    ]
    if all(sum(1 for b in buffers if b.first <= i <= b.last) <= 2 for i in range(-1, len(model.ops) + 1)):
        pp = _ping_pong(buffers, bound)
        if pp is not None:
            candidates.append(pp)

    def arena_end(p: dict[Buffer, int]) -> int:
        return max((p[b] + _align(b.size) for b in p), default=0)

    best = min(candidates, key=arena_end)  # min keeps the first of equal candidates
    offsets = {t: best[b] for b in buffers for t in b.tensors}
    assert min(offsets.values(), default=0) >= 0
    return ArenaPlan(
        offsets=offsets,
        size=arena_end(best),
        peak_op=model.ops[peak].name if peak is not None else None,
        peak_live_bytes=bound,
        live_bytes=live,
    )


# ----------------------------------------------------------------- packed bands (scratch plan)

#: staging any band may take, whatever the other layers' scratch (bytes); at most 1/16 of the
#: board's RAM (``band_floor``)
BAND_STAGING_FLOOR = 4096


def band_floor(ram_bytes: int | None) -> int:
    """The staging floor of ``plan_bands`` on a part with ``ram_bytes`` of RAM (None: unknown)."""
    return BAND_STAGING_FLOOR if ram_bytes is None else min(BAND_STAGING_FLOOR, ram_bytes // 16)


def band_staging_bytes(
    in_dims, kernel_h: int, stride_h: int, out_dims, n_packed_inputs: int, out_packed: bool, rows: int
) -> int:
    """Staging bytes of a packed conv band of ``rows`` output rows (as the C
    ``q4_conv_band_p4_get_buffer_size``): the int8 input rows it reads, per packed input, and its
    int8 output rows when the output is packed."""
    in_rows = min((rows - 1) * stride_h + kernel_h, in_dims[0])
    return n_packed_inputs * in_rows * in_dims[1] * in_dims[2] + (
        rows * out_dims[1] * out_dims[2] if out_packed else 0
    )


def band_rows(staging, out_rows: int, budget: int) -> int:
    """The most output rows (1 .. ``out_rows``) whose staging (``staging(rows)`` bytes) fits
    ``budget``; 1 when none does."""
    rows = 1
    while rows < out_rows and staging(rows + 1) <= budget:
        rows += 1
    return rows


def plan_bands(
    layers: list[tuple[int, Callable[[int], int], int]],
    other_scratch: int = 0,
    floor: int = BAND_STAGING_FLOOR,
) -> list[int]:
    """Output rows per band of each packed layer, given as (its kernel's scratch bytes, its
    staging bytes as a function of the rows, its output rows); ``other_scratch`` is the scratch
    of the model's other kernels. The scratch is shared by all ops, so it is
    ``S = max(other_scratch, kernel + staging(rows))`` over the layers: first each layer takes
    what the largest kernel scratch leaves beside its own (at least ``floor``), then
    each grows its bands to fill S (fewer kernel calls at no extra RAM)."""
    largest = max([other_scratch] + [kernel for kernel, _, _ in layers])
    rows = [band_rows(staging, n, max(floor, largest - kernel)) for kernel, staging, n in layers]
    total = max([largest] + [kernel + staging(r) for (kernel, staging, _), r in zip(layers, rows)])
    return [band_rows(staging, n, total - kernel) for kernel, staging, n in layers]
