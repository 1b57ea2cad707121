"""``q4sdk check model.onnx [--board B]``: what q4sdk will make of a model, before any quantization.

Lists the ONNX op types with their counts and whether q4sdk supports them, every unsupported node
(op, attribute value, rank: the importer's ``issues``), parameters, MACs, and an estimate of flash
(packed INT4 weights + the int32 bias / multiplier / shift tables) and arena, and with ``--board``
whether the model fits that board's flash and RAM.

How the figures are obtained:

* a model the importer accepts is lowered to the integer program's *structure* (the lowering plan,
  the tensor shapes and bit widths, no values): MACs and flash are counted as ``generate``
  counts them for single-term layers (the default recipe's sensitivity pass may make layers worth
  up to 5 % of the MACs dual, which only calibration data decides) (``report.op_costs``) and the arena is the real arena planner's result
  (``codegen.arena.plan_arena``), for 8-bit and for packed 4-bit activations;
* for a model it does not accept, MACs and flash come from ONNX shape inference over the Conv /
  ConvTranspose / Gemm / MatMul nodes, and the arena is the planner's lower bound: the largest sum
  of (16-byte aligned) tensors live at once, a tensor being live from its producer to its last reader.

Flash and RAM on a board add the firmware project's code / static / stack estimates
(``targets.project``); the build's link map has the real figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error

TABLE_BYTES_PER_CHANNEL = 12  # int32 bias, multiplier, shift
ALIGN = 16


@dataclass
class ModelCheck:
    model: str
    supported: bool
    op_types: dict[str, int]  # ONNX op type -> node count
    unsupported_op_types: list[str]  # op types with no import rule at all
    issues: list[dict]  # every unsupported node: node, op_type, message, op_level
    parameters: int  # float initializer elements
    macs: int
    weight_bytes: int  # flash: packed INT4 weights + per-channel tables
    arena_bytes_a8: int  # 8-bit activations
    arena_bytes_a4_packed: int  # 4-bit activations, two per byte
    estimate: str  # how the figures were obtained ("exact plan" / "onnx")
    boards: dict = field(default_factory=dict)  # board -> fit figures

    def to_dict(self) -> dict:
        return asdict(self)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _per_sample(shape) -> int:
    return int(np.prod(shape[1:])) if len(shape) > 1 else int(np.prod(shape))


# ---------------------------------------------------------------- supported models: the plan


def skeleton_model(graph, activation_bits: int, recipe_name: str = "default"):
    """The integer program's structure for ``graph`` as recipe ``recipe_name`` lowers it (shapes,
    bits, array shapes; no values): dual INT4 layers carry a second weight tensor, and at 4-bit
    activations a residual-quantized network input or last-layer input adds its second tensor and
    its residual_split ops, as ``q4sdk.ptq.lower`` does. Layers that the recipe's
    ``sensitivity_budget`` picks from calibration data are not known here: they add up to that
    fraction of MACs (and their second weight tensors) to the figures."""
    from q4sdk.ir.ops import WEIGHTED_KINDS
    from q4sdk.ir.qmodel import QModel, QOp, QTensor
    from q4sdk.ptq.lower import residual_name
    from q4sdk.ptq.plan import build_plan
    from q4sdk.ptq.recipe import preset

    recipe = preset(recipe_name, activation_bits)

    def stored(shape):
        return (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape)

    steps = build_plan(graph)
    weighted = [s for s in steps if s.kind in WEIGHTED_KINDS]
    alias = {"@first": weighted[0].node.name, "@last": weighted[-1].node.name} if weighted else {}
    dual = {alias.get(n, n) for n in recipe.dual_layers}
    last_input = weighted[-1].inputs[0] if weighted and "@last_input" in recipe.residual_activations else None
    tensors = {
        graph.input_name: QTensor(
            graph.input_name, stored(graph.shapes[graph.input_name]), activation_bits, 1.0, 0
        )
    }
    res_in = residual_name(graph.input_name) if recipe.residual_input else None
    if res_in:
        tensors[res_in] = QTensor(res_in, stored(graph.shapes[graph.input_name]), activation_bits, 1.0, 0)
    ops = []
    for step in steps:
        bits = 8 if step.output in (graph.output_name, last_input) else activation_bits
        if step.same_quant:  # maxpool, clamp, pad, reshape keep their input's quantization
            bits = tensors[step.inputs[0]].bits
        inputs = list(step.inputs) + ([res_in] if res_in and graph.input_name in step.inputs else [])
        arrays = {}
        if step.kind in WEIGHTED_KINDS:
            if step is weighted[-1] and last_input is not None:  # X1, X2 from the 8-bit fine grid
                inputs = []
                for part, suffix in enumerate(("coarse", "residual")):
                    name = f"{last_input}__{suffix}"
                    tensors[name] = QTensor(name, tensors[last_input].shape, activation_bits, 1.0, 0)
                    ops.append(QOp(name, "residual_split", [last_input], name, {"part": part}, {}))
                    inputs.append(name)
            w = step.node.params["weight"]
            o = w.shape[0]
            shape = {
                "conv2d": (o, *w.shape[2:], w.shape[1]),
                "conv_transpose": (o, *w.shape[2:], w.shape[1]),
                "depthwise_conv2d": (o, *w.shape[2:]),
            }.get(step.kind, w.shape)
            terms = len(inputs) * (2 if step.node.name in dual else 1)
            arrays = {
                "weight": np.zeros(shape, np.int8),
                "bias": np.zeros(o, np.int32),
                "multiplier": np.zeros((terms, o) if terms > 1 else o, np.int32),
                "shift": np.zeros(o, np.int32),
            }
            if step.node.name in dual:
                arrays["weight2"] = np.zeros(shape, np.int8)
        tensors[step.output] = QTensor(step.output, stored(graph.shapes[step.output]), bits, 1.0, 0)
        ops.append(QOp(step.node.name, step.kind, inputs, step.output, {}, arrays))
    meta = {"input_residual": res_in} if res_in else {}
    return QModel(graph.name, graph.input_name, graph.output_name, tensors, ops, meta)


def _plan_figures(graph) -> tuple[int, int, int, int]:
    """(MACs, weight bytes, arena A8, arena A4 packed) of an importable graph."""
    from q4sdk.check.report import op_costs
    from q4sdk.codegen.arena import packed_tensors, plan_arena

    a8 = skeleton_model(graph, 8)
    costs = [op_costs(a8, op) for op in a8.ops]
    a4 = skeleton_model(graph, 4)
    return (
        sum(c[0] for c in costs),
        sum(c[1] for c in costs),
        plan_arena(a8).size,
        plan_arena(a4, packed_tensors(a4)).size,
    )


# ---------------------------------------------------------------- any model: ONNX shape inference


def _onnx_figures(model) -> tuple[int, int, int, int]:
    """(MACs, weight bytes, arena A8 lower bound, arena A4 packed lower bound) from shape inference."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    for inp in model.graph.input:  # a dynamic batch as 1
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - without shapes the figures are 0
        inferred = model
    inits = {t.name: t for t in model.graph.initializer}
    shapes = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    macs = flash = 0
    for node in model.graph.node:
        w = inits.get(node.input[1]) if len(node.input) > 1 else None
        out = shapes.get(node.output[0]) if node.output else None
        if w is None or out is None:
            continue
        wshape = tuple(w.dims)
        if node.op_type == "Conv" and len(wshape) >= 3:
            o, k = wshape[0], int(np.prod(wshape[1:]))
            macs += _per_sample(out) * k
        elif node.op_type == "ConvTranspose" and len(wshape) >= 3 and node.input[0] in shapes:
            o, k = int(np.prod(wshape[1:2])), int(wshape[0] * np.prod(wshape[2:]))
            macs += _per_sample(shapes[node.input[0]]) * int(np.prod(wshape[1:]))
        elif node.op_type in ("Gemm", "MatMul") and len(wshape) == 2:
            trans = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
            o, k = (wshape[0], wshape[1]) if trans else (wshape[1], wshape[0])
            macs += _per_sample(out) * k
        else:
            continue
        flash += o * ((k + 1) // 2) + TABLE_BYTES_PER_CHANNEL * o
    # arena lower bound: live activation tensors at each node
    produced = {t: -1 for t in shapes if t in {i.name for i in model.graph.input}}
    last: dict[str, int] = {}
    for i, node in enumerate(model.graph.node):
        for t in node.input:
            if t in produced:
                last[t] = i
        for t in node.output:
            if t in shapes and t not in inits:
                produced[t] = i
    for o in model.graph.output:
        last[o.name] = len(model.graph.node)
    peak8 = peak4 = 0
    for i in range(len(model.graph.node)):
        live = [t for t, p in produced.items() if p <= i <= last.get(t, p)]
        peak8 = max(peak8, sum(_align(_per_sample(shapes[t])) for t in live))
        peak4 = max(peak4, sum(_align((_per_sample(shapes[t]) + 1) // 2) for t in live))
    return macs, flash, peak8, peak4


# ---------------------------------------------------------------- boards


def board_fit(check: ModelCheck, board, activation_bits: int = 8) -> dict:
    """Estimated flash and RAM on ``board`` (the firmware project's estimates) and whether they fit."""
    from q4sdk.targets.project import (
        CODE_BASE_BYTES,
        CODE_PER_KERNEL_BYTES,
        CODE_PER_OP_BYTES,
        STATIC_BASE_BYTES,
    )

    n_ops = sum(check.op_types.values())
    code = CODE_BASE_BYTES + min(len(check.op_types), 8) * CODE_PER_KERNEL_BYTES + n_ops * CODE_PER_OP_BYTES
    arena = check.arena_bytes_a8 if activation_bits == 8 else check.arena_bytes_a4_packed
    flash = check.weight_bytes + code
    ram = arena + STATIC_BASE_BYTES + 4 * n_ops + (board.stack_size or 0)
    fits_flash = board.flash is None or flash <= board.flash.size
    fits_ram = board.ram is None or ram <= board.ram.size
    return {
        "flash_bytes": flash,
        "ram_bytes": ram,
        "flash_size": None if board.flash is None else board.flash.size,
        "ram_size": None if board.ram is None else board.ram.size,
        "fits": bool(fits_flash and fits_ram),
        "fits_flash": fits_flash,
        "fits_ram": fits_ram,
    }


def largest_flash_board() -> tuple[str, int] | None:
    """(name, flash bytes) of the known board with the most flash (None if no board gives a size)."""
    from q4sdk.targets.boards import list_boards, load_board

    sized = [(b.flash.size, b.name) for b in map(load_board, list_boards()) if b.flash is not None]
    if not sized:
        return None
    size, name = max(sized)
    return name, size


def flash_warning(weight_bytes: int) -> str | None:
    """The warning ``generate`` prints when the weights alone fit no known board's flash."""
    best = largest_flash_board()
    if best is None or weight_bytes <= best[1]:
        return None
    return (
        f"warning: the weights take {weight_bytes:,} bytes of flash; no board q4sdk knows has that much "
        f"(largest: {best[0]}, {best[1]:,} bytes; see 'q4sdk boards')"
    )


# ---------------------------------------------------------------- the check


def check_model(source, boards: list[str] = ()) -> ModelCheck:
    """Check an ONNX file or ``onnx.ModelProto`` (``source``) without quantizing it."""
    import onnx

    from q4sdk.frontend.onnx_import import check_onnx_model

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise Q4Error(f"{path}: no such file")
        try:
            model = onnx.load(str(path))
        except Exception as err:  # noqa: BLE001 - protobuf decode errors have no stable public type
            raise Q4Error(
                f"{path}: not a valid ONNX model ({str(err).splitlines()[0] if str(err) else err})"
            ) from None
        name = path.stem
    else:
        model, name = source, source.graph.name or "model"
    graph, issues = check_onnx_model(model, name)
    if graph is not None:
        macs, flash, a8, a4 = _plan_figures(graph)
        how = "plan"
    else:
        macs, flash, a8, a4 = _onnx_figures(model)
        how = "onnx"
    params = sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
    )
    result = ModelCheck(
        model=name,
        supported=graph is not None,
        op_types=dict(sorted(Counter(n.op_type for n in model.graph.node).items())),
        unsupported_op_types=sorted({i.op_type for i in issues if i.op_level}),
        issues=[asdict(i) for i in issues],
        parameters=params,
        macs=int(macs),
        weight_bytes=int(flash),
        arena_bytes_a8=int(a8),
        arena_bytes_a4_packed=int(a4),
        estimate=how,
    )
    if boards:
        from q4sdk.targets.boards import load_board

        for b in boards:
            board = load_board(b)
            result.boards[board.name] = {f"a{bits}": board_fit(result, board, bits) for bits in (8, 4)}
    return result


def format_check(c: ModelCheck) -> str:
    by_type: dict[str, list[dict]] = {}
    for i in c.issues:
        by_type.setdefault(i["op_type"], []).append(i)
    rows = [
        f"model                 {c.model}: "
        + ("supported" if c.supported else f"NOT supported ({len(c.issues)} issue(s))"),
        "",
        f"{'op type':<24} {'nodes':>6}  supported",
    ]
    for op, n in c.op_types.items():
        found = by_type.get(op, [])
        status = (
            "no (op type)"
            if any(i["op_level"] for i in found)
            else f"partly ({len(found)} of {n} nodes)"
            if found
            else "yes"
        )
        rows.append(f"{op:<24} {n:>6}  {status}")
    if c.issues:
        rows += ["", "unsupported:"] + [f"  {i['message']}" for i in c.issues]
    from q4sdk.ptq.recipe import preset

    budget = preset("default", 8).sensitivity_budget or 0.0
    how = (
        "from the lowering plan and the arena planner, every layer single-term; the default "
        f"recipe may make the most sensitive layers dual, adding up to {budget:.0%} to MACs and their weights"
        if c.estimate == "plan"
        else "estimate from ONNX shapes; arena = peak of live tensors (a lower bound)"
    )
    rows += [
        "",
        f"parameters            {c.parameters:,}",
        f"MACs per inference    {c.macs:,}",
        f"flash (weights)       {c.weight_bytes:,} bytes (packed INT4 + bias/multiplier/shift tables)",
        f"arena                 {c.arena_bytes_a8:,} bytes with 8-bit activations, "
        f"{c.arena_bytes_a4_packed:,} bytes with packed 4-bit activations",
        f"figures               {how}",
    ]
    for name, fits in c.boards.items():
        for key, f in fits.items():
            verdict = "fits" if f["fits"] else "does NOT fit"
            flash = "-" if f["flash_size"] is None else f"{f['flash_size']:,}"
            ram = "-" if f["ram_size"] is None else f"{f['ram_size']:,}"
            rows.append(
                f"board {name} ({key.upper()}): {verdict}: flash ~{f['flash_bytes']:,} of {flash} bytes, "
                f"RAM ~{f['ram_bytes']:,} of {ram} bytes (estimate)"
            )
    return "\n".join(rows)
