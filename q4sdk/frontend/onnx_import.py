"""ONNX model -> FloatGraph.

The importer walks the ONNX nodes in order, keeps a table of tensors known at import time
(initializers, ``Constant`` outputs and anything computed only from them, e.g. the
``Shape -> Gather -> Concat`` chains that feed a ``Reshape``) and turns every node that touches
an activation into one of the canonical ops of :mod:`q4sdk.ir.float_graph`, checking shapes on the way.

Canonicalisation done here:

* BatchNormalization and an ``Add`` of a constant are folded into the preceding Conv/Gemm/MatMul;
  MatMul + Add becomes one ``fully_connected``.
* ``Add`` / ``Sub`` / ``Mul`` / ``Div`` with a constant operand (scalar or one value per channel) is a
  per-channel affine map: folded into the Conv/Gemm before it when nothing else reads that output,
  else a 1x1 depthwise conv (diagonal dense for (F,)) that ``_fold_affines`` folds into the
  Conv/Gemm after it where exact (input normalisation ``(x - mean) / std``).
* ``Add`` / ``Sub`` / ``Mul`` of two activations: equal shapes, or an [N, C, 1, 1] operand read at
  every pixel (squeeze-excite). ``x * Sigmoid(x)`` is one ``unary`` silu; the exported exact GELU
  (Div, Erf, Add, Mul, Mul) is one ``Gelu`` node before import (``_fuse_gelu``), a ``unary`` gelu.
  ``PRelu`` with one slope is a leaky ReLU, with a slope per channel the ``prelu`` op.
* ``[N, C, L]`` tensors (1-D models) are held as ``(C, 1, L)``, the same bytes: Conv1d, pooling and
  pads become their ``1 x k`` 2-D forms (``one_d`` names the tensors that are rank 3 in ONNX).
* Layout ops (Reshape, Transpose, Squeeze, Unsqueeze, Slice, Split, Gather with constant indices)
  are run on an index map of their input (``_View``, ONNX reference semantics) and stay pending
  until an op that computes reads them; then the map becomes ``gather`` ops along single axes
  (channel shuffle, slices, split outputs, a chain of them fused) and / or a ``reshape`` that keeps
  the channels-last bytes in place (a flatten, spatial axes merged / split, [N, C, L] <-> [N, C, 1,
  L]). A map that is neither (a transpose of two axes) is refused.
* ``Concat`` joins activations on any axis but the batch.
* ``ConvTranspose`` (group 1) becomes ``conv_transpose`` with its weight as [O, I, kh, kw];
  ``Resize`` by integer factors of H and W (nearest, or linear with half-pixel
  centres) becomes ``resize``.
* ``ReduceMean`` over H and W becomes ``global_avgpool`` (plus ``reshape`` when it drops the axes);
  over other axes that are adjacent in channels-last order (C, W, H, (W, C), all) ``reduce_mean``.
* ``Softmax`` becomes ``softmax`` (any axis), except the final one over the classes (below).
* A zero ``Pad`` is folded into the Conv / AveragePool that is its only consumer, and into such a
  MaxPool when its input is a ReLU/Clip(lo >= 0) output (MaxPool pads with -inf, not 0).
* ``Identity``/``Dropout`` are removed; a trailing ``Softmax`` is removed (``output_softmax``);
  an NHWC->NCHW ``Transpose`` on the graph input is removed (``input_layout="NHWC"``).

Anything else is rejected before any work, with every unsupported node listed at once
(:class:`UnsupportedModel`, a :class:`Q4Error` whose ``issues`` give node, op type and what is
unsupported: the op, an attribute value, a rank). A node that only fails because it reads the output
of an unsupported node is not listed again; ONNX shape inference gives such tensors a shape so the
nodes after them are still checked.

Malformed data is refused at import, naming the initializer: an initializer whose data does not match
its dims, NaN / Inf in a weight, bias or BatchNorm parameter, a negative BatchNorm variance.
Degenerate but well-defined models are imported as they compute: ``Clip`` with min > max outputs
max everywhere (ONNX semantics), which becomes a Clip(max, max) fused into the producing Conv/Gemm,
or otherwise a zero-weight depthwise conv / dense whose bias is max.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.external_data_helper import load_external_data_for_model, uses_external_data
from onnx.reference import ReferenceEvaluator

from q4sdk.errors import Q4Error
from q4sdk.ir.float_graph import FloatGraph, FloatNode
from q4sdk.ir.ops import MAX_CONCAT_INPUTS, RESIZE_MAX_SCALE

MIN_OPSET = 13

_REMOVED_OPS = ("Identity", "Dropout")
_NCHW_FROM_NHWC = [0, 3, 1, 2]
# op types users meet in recurrent / attention models: the error says they are planned, not refused
NOT_YET_OPS = (
    "LSTM",
    "GRU",
    "RNN",
    "LayerNormalization",
    "Attention",
    "MultiHeadAttention",
    "Einsum",
    "GroupNormalization",
    "InstanceNormalization",
)


@dataclass(frozen=True)
class Issue:
    """One unsupported node: its name, ONNX op type, and the message (which names it).

    ``op_level``: the op type itself has no import rule (vs. an attribute, rank or position of a
    supported op type)."""

    node: str
    op_type: str
    message: str
    op_level: bool = False


class UnsupportedModel(Q4Error):
    """The model uses something q4sdk cannot import; ``issues`` lists every such node."""

    def __init__(self, name: str, issues: list[Issue]):
        self.issues = list(issues)
        if len(issues) == 1:
            text = issues[0].message
        else:
            text = f"{name}: {len(issues)} unsupported nodes: " + "; ".join(i.message for i in issues)
        super().__init__(text)


@dataclass
class _View:
    """A pending result of layout ops (Reshape, Transpose, Slice, ...) on activation ``source``:
    ``index[n, ...]`` is the flat C-order position in ``source`` (``[N, *shape]``, as held) of each
    element of the ONNX tensor. It becomes a tensor (a ``gather`` and / or a ``reshape``) when an op
    that computes reads it (``_Importer._materialize``)."""

    node: str
    op_type: str
    source: str
    index: np.ndarray


# ops that only move elements: evaluated on an index array, materialized when read
VIEW_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Split", "Gather")


def _stored_order(shape: tuple[int, ...]) -> np.ndarray:
    """The C-order positions of a (C, H, W) / (F,) tensor in the order its channels-last bytes hold them."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    return (idx.transpose(1, 2, 0) if len(shape) == 3 else idx).ravel()


def _as_gathers(per: np.ndarray, src: tuple[int, ...], target: tuple[int, ...]):
    """``per`` (a C-order index map into a tensor of shape ``src``) as gathers along axes of ``src``
    followed by a C-order reshape: ([(axis, index list), ...], gathered shape), or None. Tried: a
    selection on each axis of ``target`` (when it has the rank of ``src``: a Slice on H and W at
    once), then one gather along any axis with a reshape after it (a channel shuffle, a flatten)."""
    size = int(np.prod(src))
    whole = np.arange(size).reshape(src)
    if len(target) == len(src) and per.size:
        mapped = per.reshape(target)
        coords = np.unravel_index(mapped, src)
        picks = [coords[a][(0,) * a + (slice(None),) + (0,) * (len(src) - a - 1)] for a in range(len(src))]
        if np.array_equal(whole[np.ix_(*picks)], mapped):
            steps = [
                (a, [int(i) for i in pick])
                for a, pick in enumerate(picks)
                if not np.array_equal(pick, np.arange(src[a]))
            ]
            return steps, tuple(target)
    one = _as_gather(per, src, whole)
    if one is None:
        return None
    axis, index, shape = one
    return ([] if axis is None else [(axis, index)]), shape


def _as_gather(per: np.ndarray, src: tuple[int, ...], whole: np.ndarray):
    """``per`` as one gather along one axis of ``src`` followed by a C-order reshape: (axis, index
    list, gathered shape), (None, None, src) for the identity, or None."""
    flat = per.ravel()
    size = int(np.prod(src))
    if flat.size == size and np.array_equal(flat, np.arange(size)):
        return None, None, tuple(src)
    for axis in range(len(src)):
        other = size // src[axis]
        if flat.size % other or flat.size == 0:
            continue
        shape = tuple(src[:axis]) + (flat.size // other,) + tuple(src[axis + 1 :])
        cand = flat.reshape(shape)
        coords = np.unravel_index(cand, src)[axis]
        index = coords[(0,) * axis + (slice(None),) + (0,) * (len(src) - axis - 1)]
        if np.array_equal(np.take(whole, index, axis=axis), cand):
            return axis, [int(i) for i in index], shape
    return None


class _OpLevel(Q4Error):
    """Raised for a node whose op type has no import rule."""


class _Downstream(Exception):
    """A node cannot be checked because an input comes from a node that was already reported."""


def supported_op_types() -> list[str]:
    """The ONNX op types the importer turns into float-graph ops (plus the removed no-ops).

    Any op whose inputs are all constants is also accepted: it is evaluated at import time. ``Erf``
    is accepted inside the exact GELU pattern only (``_fuse_gelu``)."""
    handled = [n[4:] for n in dir(_Importer) if n.startswith("_op_")]
    return sorted({*handled, *_REMOVED_OPS, *VIEW_OPS, "Shape", "Constant", "Erf"})


def check_onnx_model(model: onnx.ModelProto, name: str) -> tuple[FloatGraph | None, list[Issue]]:
    """Import ``model`` if it can be; return (graph or None, every issue)."""
    try:
        return import_onnx_model(model, name), []
    except UnsupportedModel as err:
        return None, err.issues


def load_onnx(path: str | Path) -> FloatGraph:
    """Read an ONNX file and import it; the graph is named after the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise Q4Error(f"{path}: no such file")
    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as err:  # protobuf decode errors have no stable public type
        raise Q4Error(f"{path}: not a valid ONNX model ({_first_line(err)})") from err
    try:
        if any(uses_external_data(t) for t in model.graph.initializer):
            load_external_data_for_model(model, str(path.parent))
    except (OSError, onnx.checker.ValidationError) as err:
        raise Q4Error(f"{path}: cannot read the model's external weight data ({_first_line(err)})") from err
    if model.ir_version <= 0 or not model.opset_import or not model.graph.node:
        raise Q4Error(f"{path}: not a valid ONNX model (no IR version, opset or graph nodes)")
    return import_onnx_model(model, path.stem, source_hash=hashlib.sha256(data).hexdigest())


def import_onnx_model(model: onnx.ModelProto, name: str, source_hash: str | None = None) -> FloatGraph:
    """Convert an in-memory ONNX model. ``source_hash`` defaults to the sha256 of the serialized proto."""
    if source_hash is None:
        source_hash = hashlib.sha256(model.SerializeToString()).hexdigest()
    graph = _Importer(model, name).run()
    graph.source_hash = source_hash
    return graph


def _first_line(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _is_removed(node: onnx.NodeProto) -> bool:
    """Identity and Dropout compute nothing at inference time; they become renames."""
    return node.op_type in _REMOVED_OPS and node.domain in ("", "ai.onnx")


def _pool_out(size: int, kernel: int, stride: int, pad_sum: int, ceil: bool = False) -> int:
    span = size + pad_sum - kernel
    return (-(-span // stride) if ceil else span // stride) + 1


class _Importer:
    """One import run: the state shared by the per-op handlers."""

    def __init__(self, model: onnx.ModelProto, name: str):
        model = _fuse_gelu(model)
        self.model = model
        self.name = name
        self.g = model.graph
        self.opset = self._check_opset()
        self.consts: dict[str, np.ndarray] = {t.name: self._initializer(t) for t in self.g.initializer}
        self.issues: list[Issue] = []
        self.opaque: set[str] = set()  # outputs of unsupported nodes
        self.opaque_const: set[str] = set()  # ... computed from constants and shapes only
        self.one_d: set[str] = set()  # tensors that are [N, C, L] in the ONNX graph, held as (C, 1, L)
        self.views: dict[str, _View] = {}  # pending Reshape / Transpose / Slice / ... results
        self.alias: dict[str, str] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.nodes: list[FloatNode] = []
        self.producer: dict[str, FloatNode] = {}
        self.input_layout = "NCHW"
        self.output_softmax = False
        self.affine: set[str] = set()  # per-channel x * scale + shift nodes of a constant Add/Sub/Mul/Div
        self.used_names: set[str] = set()
        self.input_name, self.batch = self._read_input()
        self.output_name = self._read_output()
        self._resolve_removed_ops()
        self.uses = self._count_uses()

    # ---------------------------------------------------------------- model-level checks

    @staticmethod
    def _initializer(t: onnx.TensorProto) -> np.ndarray:
        try:
            return numpy_helper.to_array(t)
        except Exception as err:  # noqa: BLE001 - onnx raises ValueError, TypeError, ...
            raise Q4Error(
                f"initializer '{t.name}': declares shape {list(t.dims)} but its data does not "
                f"match ({_first_line(err)})"
            ) from None

    def _inferred_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shapes of every tensor ONNX shape inference can tell (for unsupported nodes)."""
        model = onnx.ModelProto.FromString(self.model.SerializeToString())
        for inp in model.graph.input:  # the batch as a number lets Reshape targets propagate
            dims = inp.type.tensor_type.shape.dim
            if dims and not dims[0].HasField("dim_value"):
                dims[0].dim_value = self.batch
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:  # noqa: BLE001 - best effort: without it, fewer downstream checks
            return {}
        out = {}
        for vi in [*inferred.graph.value_info, *inferred.graph.output]:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) >= 2 and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
                shape = tuple(int(d.dim_value) for d in dims[1:])
                if len(shape) == 2:  # [N, C, L], held as (C, 1, L)
                    self.one_d.add(vi.name)
                    shape = (shape[0], 1, shape[1])
                out[vi.name] = shape
        return out

    def _check_opset(self) -> int:
        versions = [o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        if not versions:
            raise Q4Error(f"{self.name}: the model declares no ONNX opset")
        if versions[0] < MIN_OPSET:
            raise Q4Error(
                f"{self.name}: ONNX opset {versions[0]} is not supported (need opset >= {MIN_OPSET}; "
                "re-export or use onnx.version_converter)"
            )
        return versions[0]

    def _read_input(self) -> tuple[str, int]:
        inputs = [i for i in self.g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise Q4Error(
                f"{self.name}: the model must have exactly one input, found {len(inputs)} "
                f"({', '.join(i.name for i in inputs)})"
            )
        inp = inputs[0]
        ttype = inp.type.tensor_type
        if ttype.elem_type != onnx.TensorProto.FLOAT:
            raise Q4Error(
                f"input '{inp.name}': element type must be float32, "
                f"got {onnx.TensorProto.DataType.Name(ttype.elem_type)}"
            )
        dims = list(ttype.shape.dim)
        if len(dims) not in (2, 3, 4):
            raise Q4Error(
                f"input '{inp.name}': rank must be 4 (N,C,H,W), 3 (N,C,L) or 2 (N,F), got {len(dims)}"
            )
        for d in dims[1:]:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise Q4Error(
                    f"input '{inp.name}': only the batch dimension may be dynamic, "
                    f"got shape {[d.dim_value or d.dim_param or '?' for d in dims]}"
                )
        self.shapes[inp.name] = tuple(int(d.dim_value) for d in dims[1:])
        if len(dims) == 3:  # [N, C, L] is held as [N, C, 1, L] (the same bytes)
            c, length = self.shapes[inp.name]
            self.shapes[inp.name] = (c, 1, length)
            self.one_d.add(inp.name)
        batch = dims[0].dim_value if dims[0].HasField("dim_value") and dims[0].dim_value > 0 else 1
        return inp.name, batch

    def _read_output(self) -> str:
        if len(self.g.output) != 1:
            raise Q4Error(f"{self.name}: the model must have exactly one output, found {len(self.g.output)}")
        return self.g.output[0].name

    def _resolve_removed_ops(self) -> None:
        """Identity and Dropout are pure renames: record them before anything else."""
        for index, node in enumerate(self.g.node):
            if not _is_removed(node):
                continue
            if len(node.output) > 1 and node.output[1]:
                used = any(node.output[1] in n.input for n in self.g.node)
                if used or node.output[1] == self.output_name:
                    name = node.name or f"{node.op_type.lower()}_{index}"
                    raise Q4Error(f"node '{name}': the Dropout mask output is not supported")
            self.alias[node.output[0]] = self.resolve(node.input[0])

    def _count_uses(self) -> dict[str, int]:
        """How many nodes read each tensor, plus one for the graph output.

        ``Shape`` reads don't count: folding a node into its consumer never changes that shape.
        """
        uses: dict[str, int] = {}
        for node in self.g.node:
            if _is_removed(node) or node.op_type == "Shape":
                continue
            for t in node.input:
                if t:
                    uses[self.resolve(t)] = uses.get(self.resolve(t), 0) + 1
        out = self.resolve(self.output_name)
        uses[out] = uses.get(out, 0) + 1
        return uses

    def resolve(self, tensor: str) -> str:
        while tensor in self.alias:
            tensor = self.alias[tensor]
        return tensor

    # ---------------------------------------------------------------- main loop

    def run(self) -> FloatGraph:
        used_names = self.used_names
        inferred = None
        for index, node in enumerate(self.g.node):
            name = self._unique_name(node, index, used_names)
            if _is_removed(node):
                continue
            try:
                self._import_node(name, node)
            except _Downstream:
                pass
            except Q4Error as err:
                self.issues.append(Issue(name, node.op_type, str(err), isinstance(err, _OpLevel)))
            else:
                continue
            if inferred is None:
                inferred = self._inferred_shapes()
            shape_only = node.op_type == "Shape" or all(
                t in self.consts or t in self.opaque_const for t in map(self.resolve, node.input) if t
            )
            for out in node.output:  # later nodes reading these are checked with inferred shapes
                self.opaque.add(out)
                if shape_only:
                    self.opaque_const.add(out)
                self.producer.pop(out, None)
                if out in inferred:
                    self.shapes[out] = inferred[out]
                else:
                    self.shapes.pop(out, None)
        if self.issues:
            raise UnsupportedModel(self.name, self.issues)
        return self._finish()

    def _import_node(self, name: str, node: onnx.NodeProto) -> None:
        if node.domain not in ("", "ai.onnx"):
            raise _OpLevel(f"node '{name}': unsupported op type '{node.domain}:{node.op_type}'")
        inputs = [self.resolve(t) if t else "" for t in node.input]
        if any(t in self.opaque_const for t in inputs) and all(
            t in self.consts or t in self.opaque_const for t in inputs if t
        ):
            raise _Downstream(node.name)  # a constant computation fed by an unsupported node
        if node.op_type == "Shape" and inputs[0] in self.opaque:
            raise _Downstream(node.name)
        if node.op_type == "Shape" and (inputs[0] in self.shapes or inputs[0] in self.views):
            self._shape(node, inputs)
        elif all(t in self.consts for t in inputs if t) and not any(t in self.opaque for t in inputs):
            self._fold_constant(name, node, inputs)
        elif node.op_type in VIEW_OPS and not self._is_input_layout_transpose(node, inputs):
            self._view(name, node, inputs)
        else:
            for t in inputs:  # a consumer that computes: pending views become tensors first
                if t in self.views:
                    self._materialize(name, t)
            inputs = [self.resolve(t) if t else "" for t in node.input]
            handler = getattr(self, f"_op_{node.op_type}", None)
            if handler is None:
                later = " yet" if node.op_type in NOT_YET_OPS else ""
                raise _OpLevel(
                    f"node '{name}': unsupported op type '{node.op_type}'"
                    + (" (recurrent / attention blocks are not supported yet)" if later else "")
                )
            handler(name, node, inputs, _attrs(node))
            if any(t in self.one_d for t in inputs if t):  # [N, C, L] in, [N, C, L'] out
                self.one_d.update(o for o in node.output if len(self.shapes.get(self.resolve(o), ())) == 3)

    def _unique_name(self, node: onnx.NodeProto, index: int, used: set[str]) -> str:
        base = node.name or f"{node.op_type.lower()}_{index}"
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        return name

    def _finish(self) -> FloatGraph:
        self._fold_affines()
        out = self.resolve(self.output_name)
        if out in self.views:
            view = self.views[out]
            try:
                self._materialize(self.output_name, out)
            except Q4Error as err:
                raise UnsupportedModel(self.name, [Issue(view.node, view.op_type, str(err))]) from None
            out = self.resolve(self.output_name)
        if out not in self.producer:
            raise Q4Error(
                f"{self.name}: the graph output '{self.output_name}' is not computed from the input"
            )
        live, stack = set(), [out]
        while stack:  # keep only the nodes the output depends on
            t = stack.pop()
            if t in self.producer and t not in live:
                live.add(t)
                stack.extend(self.producer[t].inputs)
        nodes = [n for n in self.nodes if n.output in live]
        shapes = {self.input_name: self.shapes[self.input_name]}
        shapes.update({n.output: self.shapes[n.output] for n in nodes})
        return FloatGraph(
            name=self.name,
            input_name=self.input_name,
            input_shape=self._onnx_shape(self.input_name),
            output_name=out,
            nodes=nodes,
            shapes=shapes,
            input_layout=self.input_layout,
            output_softmax=self.output_softmax,
        )

    # ---------------------------------------------------------------- helpers for handlers

    def _act(self, name: str, tensor: str, rank: int | None = None) -> tuple[int, ...]:
        """Per-sample shape of an activation input, checking its rank (3 = C,H,W; 1 = F)."""
        if tensor not in self.shapes:
            if tensor in self.opaque:
                raise _Downstream(tensor)
            raise Q4Error(f"node '{name}': input '{tensor}' is not produced by an earlier node")
        shape = self.shapes[tensor]
        if rank is not None and len(shape) != rank:
            want = "[N, C, H, W]" if rank == 3 else "[N, F]"
            raise Q4Error(f"node '{name}': expects a {want} input, got [N, {', '.join(map(str, shape))}]")
        return shape

    def _const(self, name: str, tensor: str, what: str, allow_inf: bool = False) -> np.ndarray:
        if tensor not in self.consts:
            if tensor in self.opaque:
                raise _Downstream(tensor)
            raise Q4Error(f"node '{name}': {what} must be a constant (initializer), '{tensor}' is computed")
        value = self.consts[tensor]
        if value.dtype.kind == "f":
            bad = np.isnan(value) if allow_inf else ~np.isfinite(value)
            if bad.any():
                kind = "NaN" if np.isnan(value).any() else "Inf"
                raise Q4Error(
                    f"node '{name}': {what} '{tensor}' holds {kind} values ({int(bad.sum())} of "
                    f"{value.size}); the float model does not compute numbers"
                )
        return value

    def _emit(
        self,
        name: str,
        op: str,
        inputs: list[str],
        output: str,
        shape: tuple[int, ...],
        attrs: dict | None = None,
        params: dict | None = None,
    ) -> FloatNode:
        node = FloatNode(name, op, inputs, output, attrs or {}, params or {})
        self.nodes.append(node)
        self.producer[output] = node
        self.shapes[output] = tuple(int(s) for s in shape)
        return node

    def _set_alias(self, output: str, tensor: str) -> None:
        """Make ``output`` another name of ``tensor`` (a removed no-op node)."""
        self.alias[output] = tensor
        self.uses[tensor] = self.uses.get(tensor, 0) - 1 + self.uses.get(output, 0)

    def _sole_producer(self, tensor: str, ops: tuple[str, ...]) -> FloatNode | None:
        """The node making ``tensor`` if its op is in ``ops`` and nothing else reads ``tensor``."""
        if tensor in self.opaque:
            raise _Downstream(tensor)
        node = self.producer.get(tensor)
        if node is None or node.op not in ops or self.uses.get(tensor, 0) != 1:
            return None
        return node

    def _rename_output(self, node: FloatNode, output: str) -> None:
        """After folding a following node into ``node``, ``node`` produces that node's output."""
        del self.producer[node.output]
        self.shapes[output] = self.shapes[node.output]
        node.output = output
        self.producer[output] = node

    def _absorb_pad(self, tensor: str, nonneg_only: bool = False) -> tuple[str, tuple[int, ...]]:
        """If ``tensor`` comes from a 'pad' read only here, drop that node; return (its input, its pads)."""
        pad = self._sole_producer(tensor, ("pad",))
        if pad is None:
            return tensor, (0, 0, 0, 0)
        if nonneg_only and not self._is_nonnegative(pad.inputs[0]):
            return tensor, (0, 0, 0, 0)
        self.nodes.remove(pad)
        del self.producer[tensor]
        return pad.inputs[0], pad.attrs["pads"]

    def _is_nonnegative(self, tensor: str) -> bool:
        node = self.producer.get(tensor)
        return node is not None and (node.op == "relu" or (node.op == "clamp" and node.attrs["lo"] >= 0))

    def _lift(self, attrs: dict) -> dict:
        """1-D window attributes (of an [N, C, L] tensor) as their [N, C, 1, L] equivalents."""
        out = dict(attrs)
        for key, fill in (("kernel_shape", 1), ("strides", 1), ("dilations", 1)):
            if key in out and len(out[key]) == 1:
                out[key] = [fill, out[key][0]]
        if "pads" in out and len(out["pads"]) == 2:
            out["pads"] = [0, out["pads"][0], 0, out["pads"][1]]
        return out

    def _window(self, name: str, attrs: dict, hw: tuple[int, int], kernel: tuple[int, int], dilated=False):
        """Strides and explicit (top, left, bottom, right) pads from ONNX conv/pool attributes
        (``dilated``: a Conv, whose kernel spans dilation * (k - 1) + 1 taps)."""
        attrs = self._lift(attrs)
        if not dilated and any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise Q4Error(f"node '{name}': dilations {list(attrs['dilations'])} are not supported (only 1)")
        if dilated:
            kernel = tuple(d * (k - 1) + 1 for d, k in zip(self._dilation(name, attrs), kernel))
        stride = tuple(int(s) for s in attrs.get("strides", [1, 1]))
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if auto_pad == "NOTSET":
            pads = tuple(int(p) for p in attrs.get("pads", [0, 0, 0, 0]))
            if any(p < 0 for p in pads):
                raise Q4Error(f"node '{name}': negative pads {list(pads)} are not supported")
        elif auto_pad == "VALID":
            pads = (0, 0, 0, 0)
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for size, k, s in zip(hw, kernel, stride):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                small, large = total // 2, total - total // 2
                begin.append(small if auto_pad == "SAME_UPPER" else large)
                end.append(total - begin[-1])
            pads = (begin[0], begin[1], end[0], end[1])
        else:
            raise Q4Error(f"node '{name}': unknown auto_pad '{auto_pad}'")
        if len(stride) != 2 or len(pads) != 4:
            raise Q4Error(f"node '{name}': only 2-D windows are supported")
        return stride, pads

    def _kernel(self, name: str, attrs: dict) -> tuple[int, int]:
        kernel = tuple(int(k) for k in self._lift(attrs).get("kernel_shape", ()))
        if len(kernel) != 2:
            raise Q4Error(f"node '{name}': needs a 2-D kernel_shape, got {list(kernel)}")
        return kernel

    def _dilation(self, name: str, attrs: dict) -> tuple[int, int]:
        dilation = tuple(int(d) for d in self._lift(attrs).get("dilations", [1, 1]))
        if len(dilation) != 2 or min(dilation) < 1:
            raise Q4Error(f"node '{name}': dilations {list(dilation)} must be two ints >= 1")
        return dilation

    def _out_hw(self, name: str, hw, kernel, stride, pads, ceil_mode: bool = False) -> tuple[int, int]:
        """Output (h, w); with ``ceil_mode`` a last partial window counts when it starts inside the
        input or its top / left padding (as onnxruntime and PyTorch do)."""
        out = tuple(
            _pool_out(hw[i], kernel[i], stride[i], pads[i] + pads[i + 2], ceil_mode) for i in range(2)
        )
        if ceil_mode:
            out = tuple(o - 1 if (o - 1) * stride[i] >= hw[i] + pads[i] else o for i, o in enumerate(out))
        if min(out) < 1:
            raise Q4Error(f"node '{name}': window {list(kernel)} does not fit the input {list(hw)}")
        return out

    # ---------------------------------------------------------------- layout ops (views)

    def _onnx_shape(self, tensor: str) -> tuple[int, ...]:
        """Per-sample shape of an activation as the ONNX graph has it ((C, L) for a held (C, 1, L))."""
        if tensor in self.views:
            return tuple(int(d) for d in self.views[tensor].index.shape[1:])
        shape = self.shapes[tensor]
        return (shape[0], shape[2]) if tensor in self.one_d else shape

    def _axis(self, name: str, tensor: str, axis: int, what: str) -> int:
        """An ONNX axis of activation ``tensor`` as the axis of its held (C, H, W) / (F,) shape."""
        rank = len(self._onnx_shape(tensor)) + 1
        a = int(axis) + rank if int(axis) < 0 else int(axis)
        if not 1 <= a < rank:
            raise Q4Error(f"node '{name}': {what} on axis {axis} of a rank-{rank} tensor is not supported")
        return {1: 0, 2: 2}[a] if tensor in self.one_d else a - 1

    def _is_input_layout_transpose(self, node: onnx.NodeProto, inputs: list[str]) -> bool:
        perm = [int(p) for p in _attrs(node).get("perm", [])]
        return (
            node.op_type == "Transpose"
            and inputs[0] == self.input_name
            and perm == _NCHW_FROM_NHWC
            and self.uses.get(inputs[0], 0) == 1
        )

    def _fresh_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.used_names:
            name, k = f"{base}_{k}", k + 1
        self.used_names.add(name)
        return name

    def _view(self, name: str, node: onnx.NodeProto, inputs: list[str]) -> None:
        """Reshape / Transpose / Squeeze / Unsqueeze / Slice / Split / Gather of an activation: run the
        node on the index map of its input (ONNX reference semantics); the outputs stay pending."""
        data = inputs[0]
        if data in self.opaque:
            raise _Downstream(data)
        if data not in self.shapes and data not in self.views:
            raise Q4Error(
                f"node '{name}': {node.op_type} with a computed '{inputs[1]}' input is not supported "
                "(only constant indices / shapes)"
            )
        feeds = {}
        for original, t in zip(node.input[1:], inputs[1:]):
            if t:
                feeds[original] = self._const(name, t, f"the {node.op_type} input '{t}'")
        if data in self.views:
            source, base = self.views[data].source, self.views[data].index
        else:
            source = data
            size = int(np.prod(self.shapes[data]))
            base = np.arange(self.batch * size, dtype=np.int64).reshape(self.batch, *self._onnx_shape(data))
        feeds[node.input[0]] = base
        try:
            results = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)
        except Exception as err:
            raise Q4Error(f"node '{name}': cannot evaluate {node.op_type} ({_first_line(err)})") from err
        for k, (out, value) in enumerate(zip(node.output, results)):
            if out:
                self.views[out] = _View(
                    name if k == 0 else self._fresh_name(f"{name}_{k}"),
                    node.op_type,
                    source,
                    np.asarray(value),
                )

    def _materialize(self, consumer: str, tensor: str) -> None:
        """Turn pending view ``tensor`` into float-graph nodes: a ``gather`` along one axis of its
        source (channel shuffle, Slice, Split, Gather) and / or a ``reshape`` that keeps the held
        bytes in place (or a flatten); anything else is refused."""
        v = self.views.pop(tensor)
        src_shape = self.shapes[v.source]
        size = int(np.prod(src_shape))
        idx = v.index
        what = f"node '{consumer}': input '{tensor}' (from {v.op_type} node '{v.node}')"
        if (
            idx.ndim < 1
            or idx.shape[0] != self.batch
            or any(not np.array_equal(idx[b], idx[0] + b * size) for b in range(self.batch))
        ):
            raise Q4Error(f"{what} mixes the batch axis with the others; not supported")
        per = idx[0]
        if per.ndim == 1:
            target = tuple(per.shape)
        elif per.ndim == 2:
            target = (per.shape[0], 1, per.shape[1])
        elif per.ndim == 3:
            target = tuple(per.shape)
        else:
            raise Q4Error(
                f"{what} is an [N, {', '.join(map(str, per.shape))}] tensor; q4sdk holds [N, F], "
                "[N, C, L] and [N, C, H, W] activations"
            )
        found = _as_gathers(per, src_shape, target)
        if found is None:
            raise Q4Error(
                f"{what} moves elements along more than one axis of '{v.source}' "
                f"[N, {', '.join(map(str, self._onnx_shape(v.source)))}]; not supported (channel shuffle, "
                "Slice, Split and Gather on one axis are, and the NHWC -> NCHW layout Transpose of the input)"
            )
        gathers, shape = found
        current, cur_shape = v.source, list(src_shape)
        for k, (axis, index) in enumerate(gathers):
            cur_shape[axis] = len(index)
            last = k == len(gathers) - 1
            out = tensor if last and shape == target else f"{tensor}__gather{k}"
            gname = v.node if out == tensor else self._fresh_name(f"{v.node}_gather{k}")
            self._emit(gname, "gather", [current], out, tuple(cur_shape), {"axis": axis, "index": index})
            current = out
        same_rank = (per.ndim == 2) == (current in self.one_d)  # [N, C, L] vs [N, C, 1, L]
        if shape == target and same_rank:
            if current != tensor:
                self._set_alias(tensor, current)
        elif shape == target and current == tensor:
            pass
        elif len(target) == 1:  # a flatten (C-order; a dense layer after it reads it as held)
            self._emit(v.node, "reshape", [current], tensor, target)
        elif np.array_equal(_stored_order(shape), _stored_order(target)):
            self._emit(v.node, "reshape", [current], tensor, target, {"shape": target})
        else:
            raise Q4Error(
                f"{what} reshapes [N, {', '.join(map(str, shape))}] to [N, {', '.join(map(str, per.shape))}], "
                "which reorders the channels-last bytes; not supported"
            )
        if per.ndim == 2:
            self.one_d.add(tensor)

    # ---------------------------------------------------------------- constant folding

    def _shape(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        attrs = _attrs(node)
        full = np.array((self.batch,) + self._onnx_shape(inputs[0]), dtype=np.int64)
        self.consts[node.output[0]] = full[attrs.get("start", 0) : attrs.get("end", None)]

    def _fold_constant(self, name: str, node: onnx.NodeProto, inputs: list[str]) -> None:
        """Evaluate a node whose inputs are all known constants (ONNX reference semantics)."""
        try:
            evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
            results = evaluator.run(None, {t: self.consts[t] for t in inputs if t})
        except Exception as err:
            raise Q4Error(
                f"node '{name}': cannot evaluate constant {node.op_type} ({_first_line(err)})"
            ) from err
        for out, value in zip(node.output, results):
            if out:
                self.consts[out] = np.asarray(value)

    # ---------------------------------------------------------------- op handlers (ONNX op name)

    def _op_Conv(self, name, node, inputs, attrs):
        c_in, h, w = self._act(name, inputs[0], rank=3)
        weight = self._const(name, inputs[1], "the Conv weight").astype(np.float32)
        if inputs[0] in self.one_d and weight.ndim == 3:
            weight = weight[:, :, None, :]
        if weight.ndim != 4:
            raise Q4Error(
                f"node '{name}': only 2-D convolutions are supported (weight shape {list(weight.shape)})"
            )
        c_out, c_per_group, kh, kw = weight.shape
        group = int(attrs.get("group", 1))
        if group < 1 or c_out % group:
            raise Q4Error(f"node '{name}': group={group} does not divide the {c_out} output channels")
        if c_per_group * group != c_in:
            raise Q4Error(
                f"node '{name}': input has {c_in} channels but the weight expects {c_per_group * group}"
            )
        if "kernel_shape" in attrs and tuple(self._lift(attrs)["kernel_shape"]) != (kh, kw):
            raise Q4Error(
                f"node '{name}': kernel_shape {list(attrs['kernel_shape'])} does not match the weight"
            )
        stride, pads = self._window(name, attrs, (h, w), (kh, kw), dilated=True)
        dilation = self._dilation(name, attrs)
        src, extra = self._absorb_pad(inputs[0])
        pads = tuple(a + b for a, b in zip(pads, extra))
        in_hw = self.shapes[src][1:]
        bias = (
            self._const(name, inputs[2], "the Conv bias").astype(np.float32).reshape(c_out)
            if len(inputs) > 2 and inputs[2]
            else np.zeros(c_out, np.float32)
        )
        span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, (kh, kw)))
        out_hw = self._out_hw(name, in_hw, span, stride, pads)
        self._emit(
            name,
            "conv2d",
            [src],
            node.output[0],
            (c_out, *out_hw),
            {"stride": stride, "pads": pads, "dilation": dilation, "groups": group},
            {"weight": weight, "bias": bias},
        )

    def _op_Gemm(self, name, node, inputs, attrs):
        (f_in,) = self._act(name, inputs[0], rank=1)
        if attrs.get("transA", 0):
            raise Q4Error(f"node '{name}': Gemm with transA=1 is not supported")
        b = self._const(name, inputs[1], "the Gemm B operand").astype(np.float32)
        weight = (b if attrs.get("transB", 0) else b.T) * np.float32(attrs.get("alpha", 1.0))
        if weight.ndim != 2 or weight.shape[1] != f_in:
            raise Q4Error(f"node '{name}': input has {f_in} features but B has shape {list(b.shape)}")
        c_out = weight.shape[0]
        bias = np.zeros(c_out, np.float32)
        if len(inputs) > 2 and inputs[2]:
            c = self._const(name, inputs[2], "the Gemm C operand").astype(np.float32)
            try:
                bias = np.broadcast_to(c, (1, c_out))[0] * np.float32(attrs.get("beta", 1.0))
            except ValueError:
                raise Q4Error(f"node '{name}': C of shape {list(c.shape)} is not a per-output bias") from None
        self._emit(
            name,
            "fully_connected",
            [inputs[0]],
            node.output[0],
            (c_out,),
            {},
            {"weight": np.ascontiguousarray(weight, np.float32), "bias": bias.astype(np.float32)},
        )

    def _op_MatMul(self, name, node, inputs, attrs):
        if all(t in self.shapes or t in self.opaque for t in inputs[:2]):
            raise Q4Error(f"node '{name}': MatMul of two activations (attention) is not supported yet")
        (f_in,) = self._act(name, inputs[0], rank=1)
        b = self._const(name, inputs[1], "the MatMul right operand").astype(np.float32)
        if b.ndim != 2 or b.shape[0] != f_in:
            raise Q4Error(
                f"node '{name}': input has {f_in} features but the matrix has shape {list(b.shape)}"
            )
        self._emit(
            name,
            "fully_connected",
            [inputs[0]],
            node.output[0],
            (b.shape[1],),
            {},
            {"weight": np.ascontiguousarray(b.T), "bias": np.zeros(b.shape[1], np.float32)},
        )

    def _op_Relu(self, name, node, inputs, attrs):
        self._emit(name, "relu", [inputs[0]], node.output[0], self._act(name, inputs[0]))

    def _op_Clip(self, name, node, inputs, attrs):
        shape = self._act(name, inputs[0])
        lo, hi = float(attrs.get("min", -np.inf)), float(attrs.get("max", np.inf))
        if len(inputs) > 1 and inputs[1]:
            lo = float(self._const(name, inputs[1], "Clip min", allow_inf=True))
        if len(inputs) > 2 and inputs[2]:
            hi = float(self._const(name, inputs[2], "Clip max", allow_inf=True))
        if math.isnan(lo) or math.isnan(hi):
            raise Q4Error(f"node '{name}': Clip bounds must be numbers, got min={lo}, max={hi}")
        if lo > hi:  # ONNX: every output is max
            self._constant_clip(name, inputs[0], node.output[0], shape, hi)
            return
        if lo == -np.inf and hi == np.inf:
            self._set_alias(node.output[0], inputs[0])
        elif lo == 0.0 and hi == np.inf:
            self._emit(name, "relu", [inputs[0]], node.output[0], shape)
        else:
            self._emit(name, "clamp", [inputs[0]], node.output[0], shape, {"lo": lo, "hi": hi})

    # ---- unary nonlinearities: one float op "unary" (attr fn), lowered to a table lookup (lut)

    def _unary(self, name, node, inputs, fn: str, **params) -> None:
        self._emit(
            name, "unary", [inputs[0]], node.output[0], self._act(name, inputs[0]), {"fn": fn, **params}
        )

    def _op_Sigmoid(self, name, node, inputs, attrs):
        self._unary(name, node, inputs, "sigmoid")

    def _op_Tanh(self, name, node, inputs, attrs):
        self._unary(name, node, inputs, "tanh")

    def _op_HardSigmoid(self, name, node, inputs, attrs):
        self._unary(
            name,
            node,
            inputs,
            "hard_sigmoid",
            alpha=float(attrs.get("alpha", 0.2)),
            beta=float(attrs.get("beta", 0.5)),
        )

    def _op_HardSwish(self, name, node, inputs, attrs):
        self._unary(name, node, inputs, "hard_swish")

    def _op_LeakyRelu(self, name, node, inputs, attrs):
        self._unary(name, node, inputs, "leaky_relu", alpha=float(attrs.get("alpha", 0.01)))

    def _constant_clip(self, name: str, src: str, output: str, shape: tuple[int, ...], value: float) -> None:
        """Clip with min > max: ``value`` everywhere. Fused into the Conv/Gemm before it as a clip to
        [value, value]; otherwise a zero-weight depthwise conv (or dense) whose bias is ``value``."""
        if self._sole_producer(src, ("conv2d", "fully_connected")) is not None:
            self._emit(name, "clamp", [src], output, shape, {"lo": value, "hi": value})
            return
        channels = shape[0]
        bias = np.full(channels, value, np.float32)
        if len(shape) == 3:
            self._emit(
                name,
                "conv2d",
                [src],
                output,
                shape,
                {"stride": (1, 1), "pads": (0, 0, 0, 0), "dilation": (1, 1), "groups": channels},
                {"weight": np.zeros((channels, 1, 1, 1), np.float32), "bias": bias},
            )
        else:
            self._emit(
                name,
                "fully_connected",
                [src],
                output,
                shape,
                {},
                {"weight": np.zeros((channels, channels), np.float32), "bias": bias},
            )

    def _op_Add(self, name, node, inputs, attrs):
        """Two activations (equal shapes, or [N, C, 1, 1] onto [N, C, H, W]), or a constant."""
        self._elementwise(name, node, inputs, "add")

    def _op_Concat(self, name, node, inputs, attrs):
        """Concat on any axis but the batch: channels, H, W of (N, C, H, W), L of (N, C, L), F of (N, F)."""
        const = [x for x in inputs if x in self.consts]
        if const:
            raise Q4Error(
                f"node '{name}': Concat of a constant ('{const[0]}') and activations is not supported"
            )
        shapes = [self._act(name, x) for x in inputs]
        axis = self._axis(name, inputs[0], int(attrs.get("axis", 1)), "Concat")
        if len(inputs) == 1:
            self._set_alias(node.output[0], inputs[0])
            return
        if len(inputs) > MAX_CONCAT_INPUTS:
            raise Q4Error(f"node '{name}': Concat of {len(inputs)} inputs (at most {MAX_CONCAT_INPUTS})")
        for x, shape in zip(inputs[1:], shapes[1:]):
            rest = [d for i, d in enumerate(shape) if i != axis]
            if len(shape) != len(shapes[0]) or rest != [d for i, d in enumerate(shapes[0]) if i != axis]:
                raise Q4Error(
                    f"node '{name}': Concat inputs '{inputs[0]}' {list(shapes[0])} and '{x}' {list(shape)} "
                    f"differ in more than the concat axis {attrs.get('axis', 1)}"
                )
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        self._emit(name, "concat", list(inputs), node.output[0], tuple(out), {"axis": axis})

    def _op_BatchNormalization(self, name, node, inputs, attrs):
        self._act(name, inputs[0])
        if attrs.get("training_mode", 0):
            raise Q4Error(f"node '{name}': BatchNormalization in training mode is not supported")
        prev = self._sole_producer(inputs[0], ("conv2d", "fully_connected", "conv_transpose"))
        if prev is None:
            raise Q4Error(
                f"node '{name}': BatchNormalization must directly follow a Conv/Gemm/MatMul "
                "(whose output has no other use) so it can be folded"
            )
        gamma, beta, mean, var = (
            self._const(name, t, "BatchNormalization parameter").astype(np.float64) for t in inputs[1:5]
        )
        bad = np.flatnonzero(var + float(attrs.get("epsilon", 1e-5)) <= 0)
        if len(bad):
            raise Q4Error(
                f"node '{name}': BatchNormalization variance '{inputs[4]}' is negative in channel "
                f"{int(bad[0])} ({var[bad[0]]:g}); the float model computes NaN there"
            )
        scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        w = prev.params["weight"].astype(np.float64)
        prev.params["weight"] = (w * scale.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32)
        prev.params["bias"] = ((prev.params["bias"] - mean) * scale + beta).astype(np.float32)
        if not all(np.isfinite(prev.params[k]).all() for k in ("weight", "bias")):
            raise Q4Error(
                f"node '{name}': folding BatchNormalization into '{prev.name}' overflows float32 "
                "(its scale gamma / sqrt(var + eps) is too large for the weights)"
            )
        self._rename_output(prev, node.output[0])

    def _op_AveragePool(self, name, node, inputs, attrs):
        c, h, w = self._act(name, inputs[0], rank=3)
        kernel = self._kernel(name, attrs)
        stride, pads = self._window(name, attrs, (h, w), kernel)
        include_pad = bool(attrs.get("count_include_pad", 0))
        out_hw = self._out_hw(name, (h, w), kernel, stride, pads, bool(attrs.get("ceil_mode", 0)))
        src, extra = self._absorb_pad(inputs[0])
        # the divisor counts the taps inside the input grown by count_pads: a folded Pad node's
        # zeros always, the pads attribute with count_include_pad=1
        count_pads = tuple(e + (p if include_pad else 0) for p, e in zip(pads, extra))
        pads = tuple(a + b for a, b in zip(pads, extra))
        pads = self._ceil_pads(self.shapes[src][1:], kernel, stride, pads, out_hw)
        window = {
            "kernel": kernel,
            "stride": stride,
            "pads": pads,
            "count_include_pad": include_pad or any(extra),
        }
        if count_pads != pads:  # some window holds taps that do not count
            window["count_pads"] = count_pads
        self._emit(name, "avgpool", [src], node.output[0], (c, *out_hw), window)

    @staticmethod
    def _ceil_pads(hw, kernel, stride, pads, out_hw) -> tuple[int, ...]:
        """``pads`` with the bottom / right grown to hold the last (ceil_mode) window."""
        grow = [
            max(0, (out_hw[i] - 1) * stride[i] + kernel[i] - hw[i] - pads[i] - pads[i + 2]) for i in range(2)
        ]
        return (pads[0], pads[1], pads[2] + grow[0], pads[3] + grow[1])

    def _op_MaxPool(self, name, node, inputs, attrs):
        c, h, w = self._act(name, inputs[0], rank=3)
        if len(node.output) > 1 and node.output[1]:
            raise Q4Error(f"node '{name}': MaxPool indices output is not supported")
        kernel = self._kernel(name, attrs)
        stride, pads = self._window(name, attrs, (h, w), kernel)
        # MaxPool pads with -inf; a zero Pad folds in only when its input is already >= 0.
        out_hw = self._out_hw(name, (h, w), kernel, stride, pads, bool(attrs.get("ceil_mode", 0)))
        src, extra = inputs[0], (0, 0, 0, 0)
        pad = self._sole_producer(inputs[0], ("pad",))
        if pad is not None:  # fold it if every window keeps an input tap: -inf taps never win
            grown = tuple(a + b for a, b in zip(pads, pad.attrs["pads"]))
            grown = self._ceil_pads(self.shapes[pad.inputs[0]][1:], kernel, stride, grown, out_hw)
            if all(p < kernel[i % 2] for i, p in enumerate(grown)):
                src, extra = self._absorb_pad(inputs[0], nonneg_only=True)
        pads = tuple(a + b for a, b in zip(pads, extra))
        pads = self._ceil_pads(self.shapes[src][1:], kernel, stride, pads, out_hw)
        self._emit(
            name,
            "maxpool",
            [src],
            node.output[0],
            (c, *out_hw),
            {"kernel": kernel, "stride": stride, "pads": pads},
        )

    def _op_GlobalAveragePool(self, name, node, inputs, attrs):
        c, _, _ = self._act(name, inputs[0], rank=3)
        self._emit(name, "global_avgpool", [inputs[0]], node.output[0], (c, 1, 1))

    def _op_ReduceMean(self, name, node, inputs, attrs):
        """A mean over every spatial axis (H and W, or L) is a global average pool, flattened unless
        keepdims; over other axes (channels, one of H / W) a ``reduce_mean``."""
        shape = self._act(name, inputs[0])
        onnx_shape = self._onnx_shape(inputs[0])
        if len(inputs) > 1 and inputs[1]:
            axes = self._const(name, inputs[1], "the ReduceMean axes").reshape(-1).tolist()
        else:
            axes = attrs.get("axes", [])
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                self._set_alias(node.output[0], inputs[0])
                return
            axes = list(range(1, len(onnx_shape) + 1))
        onnx_axes = sorted({int(a) % (len(onnx_shape) + 1) for a in axes})
        held = sorted({self._axis(name, inputs[0], a, "ReduceMean") for a in onnx_axes})
        keep = bool(attrs.get("keepdims", 1))
        out_onnx = [d if i + 1 not in onnx_axes else 1 for i, d in enumerate(onnx_shape)]
        if not keep:
            out_onnx = [d for i, d in enumerate(onnx_shape) if i + 1 not in onnx_axes]
        spatial = len(shape) == 3 and {1, 2} <= {*held, *(i for i in (1, 2) if shape[i] == 1)}
        if spatial and 0 not in held:
            pooled = node.output[0] if keep else f"{node.output[0]}_gap"
            self._emit(
                name if keep else f"{name}_gap", "global_avgpool", [inputs[0]], pooled, (shape[0], 1, 1)
            )
            if not keep:
                if len(out_onnx) == 1:
                    self._flatten(name, pooled, node.output[0], self.shapes[pooled])
                else:  # [N, C, 1] of an [N, C, H, L] with H = 1: the same bytes
                    self.one_d.add(pooled)
                    self._set_alias(node.output[0], pooled)
            return
        self._reduce_mean(name, node, inputs[0], shape, held, out_onnx)

    def _reduce_mean(self, name, node, src: str, shape, held: list[int], out_onnx: list[int]) -> None:
        """A mean over held axes that are adjacent in the channels-last bytes (any axis of (C, H, W)
        alone, (W, C), (H, W, C)); the result reshaped to the ONNX output where the bytes allow."""
        stored_axis = {0: 2, 1: 0, 2: 1} if len(shape) == 3 else {0: 0}
        axes = sorted(stored_axis[a] for a in held)
        if axes != list(range(axes[0], axes[-1] + 1)):
            with_ones = sorted({*axes, *(stored_axis[i] for i, d in enumerate(shape) if d == 1)})
            inner = [a for a in with_ones if axes[0] <= a <= axes[-1]]
            if inner != list(range(axes[0], axes[-1] + 1)):
                raise Q4Error(
                    f"node '{name}': ReduceMean over axes that are not adjacent in channels-last order "
                    "is not supported"
                )
        kept = tuple(1 if i in held else d for i, d in enumerate(shape))
        target = (
            tuple(out_onnx) if len(out_onnx) != 2 else (out_onnx[0], 1, out_onnx[1]) if out_onnx else (1,)
        )
        out = node.output[0]
        mean = out if kept == target else f"{out}_mean"
        self._emit(name if mean == out else f"{name}_mean", "reduce_mean", [src], mean, kept, {"axes": held})
        if mean == out:
            pass
        elif len(target) == 1:
            self._flatten(name, mean, out, kept)
        elif np.array_equal(_stored_order(kept), _stored_order(target)):
            self._emit(name, "reshape", [mean], out, target, {"shape": target})
        else:
            raise Q4Error(
                f"node '{name}': ReduceMean with keepdims=0 to [N, {', '.join(map(str, out_onnx))}] "
                "reorders the channels-last bytes; not supported (use keepdims=1)"
            )
        if len(out_onnx) == 2:
            self.one_d.add(out)

    def _op_Flatten(self, name, node, inputs, attrs):
        shape = self._act(name, inputs[0])
        axis = int(attrs.get("axis", 1))
        if axis < 0:
            axis += len(shape) + 1
        if axis != 1:
            raise Q4Error(f"node '{name}': Flatten with axis={attrs['axis']} is not supported (only axis 1)")
        self._flatten(name, inputs[0], node.output[0], shape)

    def _flatten(self, name: str, src: str, output: str, shape: tuple[int, ...]) -> None:
        if len(shape) == 1:
            self._set_alias(output, src)
        else:
            self._emit(name, "reshape", [src], output, (int(np.prod(shape)),))

    def _op_Pad(self, name, node, inputs, attrs):
        shape = self._act(name, inputs[0], rank=3)
        if attrs.get("mode", "constant") != "constant":
            raise Q4Error(f"node '{name}': Pad mode '{attrs['mode']}' is not supported (only constant)")
        if len(inputs) > 2 and inputs[2] and np.any(self._const(name, inputs[2], "the Pad value") != 0):
            raise Q4Error(f"node '{name}': Pad with a non-zero value is not supported")
        raw = [int(p) for p in self._const(name, inputs[1], "the Pad amounts").reshape(-1)]
        if inputs[0] in self.one_d and len(raw) == 6 and not (len(inputs) > 3 and inputs[3]):
            raw = [*raw[:2], 0, raw[2], *raw[3:5], 0, raw[5]]  # [N, C, L] pads as [N, C, 1, L]
        axes = (
            [int(a) % 4 for a in self._const(name, inputs[3], "the Pad axes").reshape(-1)]
            if len(inputs) > 3 and inputs[3]
            else list(range(4))
        )
        begin, end = [0] * 4, [0] * 4
        for i, axis in enumerate(axes):
            begin[axis], end[axis] = raw[i], raw[i + len(axes)]
        if begin[:2] != [0, 0] or end[:2] != [0, 0] or min(begin + end) < 0:
            raise Q4Error(f"node '{name}': only non-negative spatial (H, W) padding is supported, got {raw}")
        pads = (begin[2], begin[3], end[2], end[3])
        if not any(pads):
            self._set_alias(node.output[0], inputs[0])
            return
        c, h, w = shape
        self._emit(
            name,
            "pad",
            [inputs[0]],
            node.output[0],
            (c, h + pads[0] + pads[2], w + pads[1] + pads[3]),
            {"pads": pads},
        )

    def _op_Softmax(self, name, node, inputs, attrs):
        shape = self._act(name, inputs[0])
        final = self.resolve(self.output_name) == node.output[0] and self.uses.get(node.output[0], 0) == 1
        if final and len(shape) == 1 and int(attrs.get("axis", -1)) in (-1, 1):
            self._set_alias(node.output[0], inputs[0])  # over the classes: the logits keep the argmax
            self.output_softmax = True
            return
        axis = self._axis(name, inputs[0], int(attrs.get("axis", -1)), "Softmax")
        self._emit(name, "softmax", [inputs[0]], node.output[0], shape, {"axis": axis})

    def _op_Transpose(self, name, node, inputs, attrs):
        perm = [int(p) for p in attrs.get("perm", [])]
        if inputs[0] != self.input_name or perm != _NCHW_FROM_NHWC or self.uses.get(inputs[0], 0) != 1:
            raise Q4Error(
                f"node '{name}': Transpose is supported only as the NHWC -> NCHW layout change "
                f"(perm {_NCHW_FROM_NHWC}) applied directly to the graph input"
            )
        h, w, c = self._act(name, inputs[0], rank=3)
        self.shapes[self.input_name] = (c, h, w)
        self.input_layout = "NHWC"
        self._set_alias(node.output[0], inputs[0])

    # ---- element-wise ops of two activations or of a constant (docs/integer-spec.md: mul, addsub)

    def _elementwise(self, name, node, inputs, op: str) -> None:
        """``op`` ("add", "sub", "mul") of two activations, or an Add / Sub / Mul of a constant (a
        per-channel affine ``x * scale + shift``, see ``_affine_const``)."""
        a, b = inputs
        if a in self.consts or b in self.consts:
            act, const = (b, a) if a in self.consts else (a, b)
            self._act(name, act)
            c = self._const(name, const, f"the other {node.op_type} operand").astype(np.float64)
            if op == "add":
                scale, shift = np.ones(1), c
            elif op == "mul":
                scale, shift = c, np.zeros(1)
            elif act == a:  # x - c
                scale, shift = np.ones(1), -c
            else:  # c - x
                scale, shift = -np.ones(1), c
            self._affine_const(name, node.op_type, act, scale, shift, node.output[0])
            return
        shape_a, shape_b = self._act(name, a), self._act(name, b)
        attrs = {}
        if shape_a != shape_b and self._per_channel_of(shape_a, shape_b):  # a is the (C, 1, 1) one
            a, b = b, a
            if op == "sub":
                attrs["reversed"] = True  # b - a: the lowering negates the other multiplier
        elif shape_a != shape_b and not self._per_channel_of(shape_b, shape_a):
            raise Q4Error(
                f"node '{name}': {node.op_type} of different shapes [N, {', '.join(map(str, shape_a))}] and "
                f"[N, {', '.join(map(str, shape_b))}] is not supported (only equal shapes, or "
                "[N, C, 1, 1] onto [N, C, H, W])"
            )
        self._emit(name, op, [a, b], node.output[0], self.shapes[a], attrs)

    @staticmethod
    def _per_channel_of(small: tuple[int, ...], full: tuple[int, ...]) -> bool:
        """``small`` is one value per channel of the feature map ``full``: (C, 1, 1) of (C, H, W)."""
        return len(full) == 3 and small == (full[0], 1, 1)

    def _op_Sub(self, name, node, inputs, attrs):
        self._elementwise(name, node, inputs, "sub")

    def _op_Mul(self, name, node, inputs, attrs):
        """Also SiLU: ``x * Sigmoid(x)`` (the Sigmoid read only here) becomes one ``unary`` silu."""
        a, b = inputs
        for x, gate_out in ((a, b), (b, a)):
            if x in self.consts or gate_out in self.consts:
                continue
            gate = self._sole_producer(gate_out, ("unary",))
            if gate is not None and gate.attrs["fn"] == "sigmoid" and gate.inputs == [x]:
                gate.attrs = {"fn": "silu"}
                self._rename_output(gate, node.output[0])
                self.uses[x] = self.uses.get(x, 0) - 1
                return
        self._elementwise(name, node, inputs, "mul")

    def _op_Div(self, name, node, inputs, attrs):
        """Division by a constant: a multiplication by its reciprocal."""
        a, b = inputs
        if b not in self.consts:
            self._act(name, b)
            raise Q4Error(f"node '{name}': Div by an activation is not supported (only by a constant)")
        self._act(name, a)
        c = self._const(name, b, "the Div divisor").astype(np.float64)
        if np.any(c == 0):
            raise Q4Error(f"node '{name}': Div by a constant that holds zeros ('{b}')")
        self._affine_const(name, "Div", a, 1.0 / c, np.zeros(1), node.output[0])

    def _channel_values(self, name: str, op_type: str, act: str, const: np.ndarray) -> np.ndarray:
        """A constant operand as one value per channel (per feature of an (F,) vector), float64."""
        shape = self.shapes[act]
        const = np.asarray(const, np.float64)
        if const.ndim > len(shape) + 1:
            raise Q4Error(
                f"node '{name}': {op_type} constant of shape {list(const.shape)} has more axes than "
                f"the activation [N, {', '.join(map(str, shape))}]"
            )
        try:
            full = np.broadcast_to(const, (1, *shape))[0]
        except ValueError:
            raise Q4Error(
                f"node '{name}': constant of shape {list(const.shape)} does not broadcast to the "
                f"activation [N, {', '.join(map(str, shape))}]"
            ) from None
        per_channel = full.reshape(shape[0], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise Q4Error(f"node '{name}': {op_type} of a constant that varies over space is not supported")
        return per_channel[:, 0].copy()

    def _affine_const(
        self, name: str, op_type: str, act: str, scale: np.ndarray, shift: np.ndarray, output: str
    ) -> None:
        """``act * scale + shift`` with per-channel constants: folded into the weights and bias of the
        Conv/Gemm that produced ``act`` when nothing else reads it (exact in float); otherwise a
        per-channel affine node (a 1x1 depthwise conv, or a diagonal dense layer for (F,)), which
        ``_fold_affines`` folds into the Conv/Gemm after it where that is exact."""
        s = self._channel_values(name, op_type, act, scale)
        t = self._channel_values(name, op_type, act, shift)
        prev = self._sole_producer(act, ("conv2d", "fully_connected", "conv_transpose"))
        if prev is not None:
            w = prev.params["weight"].astype(np.float64)
            weight = (w * s.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32)
            bias = (prev.params["bias"].astype(np.float64) * s + t).astype(np.float32)
            if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
                raise Q4Error(f"node '{name}': folding {op_type} into '{prev.name}' overflows float32")
            prev.params["weight"], prev.params["bias"] = weight, bias
            self._rename_output(prev, output)
            return
        shape = self.shapes[act]
        c = shape[0]
        if len(shape) == 3:
            node = self._emit(
                name,
                "conv2d",
                [act],
                output,
                shape,
                {"stride": (1, 1), "pads": (0, 0, 0, 0), "dilation": (1, 1), "groups": c},
                {"weight": s.reshape(c, 1, 1, 1).astype(np.float32), "bias": t.astype(np.float32)},
            )
        elif len(shape) == 1:
            node = self._emit(
                name,
                "fully_connected",
                [act],
                output,
                shape,
                {},
                {"weight": np.diag(s).astype(np.float32), "bias": t.astype(np.float32)},
            )
        else:
            raise Q4Error(f"node '{name}': {op_type} of a constant needs an [N, C, H, W] or [N, F] input")
        self.affine.add(node.name)

    def _fold_affines(self) -> None:
        """Fold each per-channel affine node into the Conv/Gemm that is its only reader, where that is
        exact in float: always for a Gemm, for a Conv when it has no padding or the shift is zero (a
        padded border would otherwise see the shift). Input normalisation ``(x - mean) / std``
        feeding the first Conv/Gemm so leaves the network input raw."""
        readers: dict[str, list[FloatNode]] = {}
        for n in self.nodes:
            for i in n.inputs:
                readers.setdefault(i, []).append(n)
        out = self.resolve(self.output_name)
        for aff in [n for n in self.nodes if n.name in self.affine]:
            nxt = readers.get(aff.output, [])
            if aff.output == out or len(nxt) != 1 or nxt[0].inputs != [aff.output]:
                continue
            nxt = nxt[0]
            w = nxt.params.get("weight")
            if nxt.op not in ("conv2d", "fully_connected") or w is None:
                continue
            if aff.op == "conv2d":
                s, t = (
                    aff.params["weight"].reshape(-1).astype(np.float64),
                    aff.params["bias"].astype(np.float64),
                )
            else:
                s, t = np.diag(aff.params["weight"]).astype(np.float64), aff.params["bias"].astype(np.float64)
            w = w.astype(np.float64)
            if nxt.op == "conv2d":
                if any(nxt.attrs.get("pads", (0, 0, 0, 0))) and np.any(t != 0):
                    continue
                o, per_group = w.shape[:2]
                out_per_group = o // int(nxt.attrs.get("groups", 1))
                index = (np.arange(o) // out_per_group)[:, None] * per_group + np.arange(per_group)[None, :]
                weight = w * s[index][:, :, None, None]
                bias = nxt.params["bias"] + (w * t[index][:, :, None, None]).sum(axis=(1, 2, 3))
            else:
                weight, bias = w * s[None, :], nxt.params["bias"] + w @ t
            if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
                continue
            nxt.params["weight"], nxt.params["bias"] = weight.astype(np.float32), bias.astype(np.float32)
            nxt.inputs = list(aff.inputs)
            self.nodes.remove(aff)
            del self.producer[aff.output]

    # ---- nonlinearities fused from several ONNX nodes, and PReLU

    def _op_Gelu(self, name, node, inputs, attrs):
        """GELU (opset 20, or the exported Div/Erf/Add/Mul/Mul pattern, see ``_fuse_gelu``)."""
        if attrs.get("approximate", "none") != "none":
            raise Q4Error(
                f"node '{name}': Gelu approximate='{attrs['approximate']}' is not supported (only 'none')"
            )
        self._unary(name, node, inputs, "gelu")

    def _op_PRelu(self, name, node, inputs, attrs):
        """One slope: a leaky ReLU (``lut``); a slope per channel: ``prelu`` (``lut_channel``)."""
        shape = self._act(name, inputs[0])
        slope = self._channel_values(
            name, "PRelu", inputs[0], self._const(name, inputs[1], "the PRelu slope")
        )
        if np.all(slope == slope[0]):
            self._unary(name, node, inputs, "leaky_relu", alpha=float(slope[0]))
            return
        self._emit(name, "prelu", [inputs[0]], node.output[0], shape, {}, {"slope": slope.astype(np.float32)})

    # ---------------------------------------------------------------- up-sampling (ConvTranspose, Resize)

    def _op_ConvTranspose(self, name, node, inputs, attrs):
        """2-D transposed convolution, group 1, dilation 1; pads and output_padding (bottom / right)."""
        c_in, h, w = self._act(name, inputs[0], rank=3)
        weight = self._const(name, inputs[1], "the ConvTranspose weight").astype(np.float32)
        if weight.ndim != 4:
            raise Q4Error(
                f"node '{name}': only 2-D transposed convolutions are supported "
                f"(weight shape {list(weight.shape)})"
            )
        group = int(attrs.get("group", 1))
        if group != 1:
            raise Q4Error(
                f"node '{name}': grouped ConvTranspose (group={group}) is not supported; only group=1"
            )
        if weight.shape[0] != c_in:
            raise Q4Error(
                f"node '{name}': input has {c_in} channels but the weight expects {weight.shape[0]}"
            )
        _, c_out, kh, kw = weight.shape
        if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != (kh, kw):
            raise Q4Error(
                f"node '{name}': kernel_shape {list(attrs['kernel_shape'])} does not match the weight"
            )
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise Q4Error(
                f"node '{name}': ConvTranspose dilations {list(attrs['dilations'])} are not supported (only 1)"
            )
        if "output_shape" in attrs:
            raise Q4Error(
                f"node '{name}': ConvTranspose with an output_shape attribute is not supported (use pads)"
            )
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise Q4Error(f"node '{name}': ConvTranspose auto_pad '{attrs['auto_pad']}' is not supported")
        stride = tuple(int(s) for s in attrs.get("strides", [1, 1]))
        pads = tuple(int(p) for p in attrs.get("pads", [0, 0, 0, 0]))
        out_pad = tuple(int(p) for p in attrs.get("output_padding", [0, 0]))
        if attrs.get("auto_pad", "NOTSET") == "VALID":
            pads = (0, 0, 0, 0)
        if len(stride) != 2 or len(pads) != 4 or len(out_pad) != 2 or min(stride) < 1:
            raise Q4Error(f"node '{name}': only 2-D windows are supported")
        if min(pads) < 0 or min(out_pad) < 0:
            raise Q4Error(f"node '{name}': negative pads {list(pads)} / output_padding are not supported")
        if any(p >= s for p, s in zip(out_pad, stride)):
            raise Q4Error(f"node '{name}': output_padding {list(out_pad)} must be smaller than the strides")
        out_hw = tuple(
            (size - 1) * s - pads[i] - pads[i + 2] + k + op
            for i, (size, s, k, op) in enumerate(zip((h, w), stride, (kh, kw), out_pad))
        )
        if min(out_hw) < 1:
            raise Q4Error(f"node '{name}': pads {list(pads)} leave no output of the input {[h, w]}")
        bias = (
            self._const(name, inputs[2], "the ConvTranspose bias").astype(np.float32).reshape(c_out)
            if len(inputs) > 2 and inputs[2]
            else np.zeros(c_out, np.float32)
        )
        self._emit(
            name,
            "conv_transpose",
            [inputs[0]],
            node.output[0],
            (c_out, *out_hw),
            {"stride": stride, "pads": pads, "output_padding": out_pad},
            {"weight": np.ascontiguousarray(weight.transpose(1, 0, 2, 3)), "bias": bias},
        )

    def _op_Resize(self, name, node, inputs, attrs):
        """Up-sampling of H and W by integer factors: nearest, or bilinear with half-pixel centres."""
        c, h, w = self._act(name, inputs[0], rank=3)
        mode = attrs.get("mode", "nearest")
        coord = attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest_mode = attrs.get("nearest_mode", "round_prefer_floor")
        scales = sizes = None
        if len(inputs) > 2 and inputs[2]:
            scales = self._const(name, inputs[2], "the Resize scales").astype(np.float64).ravel()
        if len(inputs) > 3 and inputs[3]:
            sizes = self._const(name, inputs[3], "the Resize sizes").astype(np.int64).ravel()
        if scales is not None and scales.size == 4:
            factors = scales
        elif sizes is not None and sizes.size == 4:
            factors = np.concatenate([[1.0], sizes[1:] / np.array((c, h, w), np.float64)])
        else:
            raise Q4Error(f"node '{name}': Resize needs constant scales or sizes for [N, C, H, W]")
        if attrs.get("axes") is not None or int(attrs.get("antialias", 0)):
            raise Q4Error(f"node '{name}': Resize with axes / antialias is not supported")
        fh, fw = float(factors[2]), float(factors[3])
        if (
            factors[0] != 1.0
            or factors[1] != 1.0
            or fh != round(fh)
            or fw != round(fw)
            or not 1 <= fh <= RESIZE_MAX_SCALE
            or not 1 <= fw <= RESIZE_MAX_SCALE
        ):
            raise Q4Error(
                f"node '{name}': Resize by {[float(f) for f in factors[1:]]} is not supported (only "
                f"integer up-sampling of H and W by 1 to {RESIZE_MAX_SCALE})"
            )
        scale = (int(fh), int(fw))
        if mode == "nearest":
            # every integer factor maps output o to input o // s under these rules
            ok = (coord == "asymmetric" and nearest_mode == "floor") or (
                coord in ("half_pixel", "pytorch_half_pixel") and nearest_mode.startswith("round_prefer")
            )
            if not ok:
                raise Q4Error(
                    f"node '{name}': nearest Resize with coordinate_transformation_mode '{coord}' and "
                    f"nearest_mode '{nearest_mode}' is not supported"
                )
        elif mode == "linear":
            if coord not in ("half_pixel", "pytorch_half_pixel"):
                raise Q4Error(
                    f"node '{name}': linear Resize with coordinate_transformation_mode '{coord}' is not "
                    "supported (only half_pixel, as align_corners=False)"
                )
            mode = "bilinear"
        else:
            raise Q4Error(f"node '{name}': Resize mode '{mode}' is not supported (only nearest and linear)")
        if scale == (1, 1):
            self._set_alias(node.output[0], inputs[0])
            return
        self._emit(
            name,
            "resize",
            [inputs[0]],
            node.output[0],
            (c, h * scale[0], w * scale[1]),
            {"mode": mode, "scale": scale},
        )


def _fuse_gelu(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each exported exact GELU, ``x * 0.5 * (1 + erf(x / sqrt 2))`` as Div (or Mul by
    1/sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5 (or the 0.5 applied to x first), whose inner
    tensors have no other reader, replaced by one ``Gelu`` node (unchanged if there is none)."""
    g = model.graph
    nodes = list(g.node)
    producer = {o: n for n in nodes for o in n.output}
    readers: dict[str, list] = {}
    for n in nodes:
        for t in n.input:
            readers.setdefault(t, []).append(n)
    outputs = {o.name for o in g.output}
    inits = {t.name: t for t in g.initializer}

    def scalar(tensor: str) -> float | None:
        if tensor in inits:
            value = numpy_helper.to_array(inits[tensor])
        elif tensor in producer and producer[tensor].op_type == "Constant":
            a = {x.name: x for x in producer[tensor].attribute}
            if "value" not in a:
                return None
            value = numpy_helper.to_array(a["value"].t)
        else:
            return None
        return float(value.reshape(-1)[0]) if value.size == 1 else None

    def only_reader(tensor: str, op_type: str):
        r = readers.get(tensor, [])
        if tensor in outputs or len(r) != 1 or r[0].op_type != op_type:
            return None
        return r[0]

    def other(n, tensor: str, value: float | None = None) -> str | None:
        """The input of binary node ``n`` beside ``tensor`` (which must be one of them); with ``value``,
        that input must be the constant ``value``."""
        if len(n.input) != 2 or tensor not in n.input:
            return None
        o = n.input[1] if n.input[0] == tensor else n.input[0]
        if value is not None and (scalar(o) is None or abs(scalar(o) - value) > 1e-3 * abs(value)):
            return None
        return o

    replace: dict[int, onnx.NodeProto] = {}
    drop: set[int] = set()
    ids = {id(n): i for i, n in enumerate(nodes)}
    for erf in (n for n in nodes if n.op_type == "Erf" and n.domain in ("", "ai.onnx")):
        scaled = producer.get(erf.input[0])
        if (
            scaled is None
            or scaled.op_type not in ("Div", "Mul")
            or only_reader(scaled.output[0], "Erf") is None
        ):
            continue
        if scaled.op_type == "Div":
            x = scaled.input[0] if scalar(scaled.input[1]) is not None else None
            if x is None or abs(scalar(scaled.input[1]) - math.sqrt(2)) > 1e-3:
                continue
        else:
            x = next((t for t in scaled.input if other(scaled, t, 1 / math.sqrt(2)) is not None), None)
            if x is None:
                continue
        add = only_reader(erf.output[0], "Add")
        if add is None or other(add, erf.output[0], 1.0) is None:
            continue
        mul = only_reader(add.output[0], "Mul")
        if mul is None:
            continue
        partner = other(mul, add.output[0])
        half = only_reader(mul.output[0], "Mul")
        if partner == x and half is not None and other(half, mul.output[0], 0.5) is not None:
            chain, final = [scaled, erf, add, mul, half], half  # ((1 + erf) * x) * 0.5
        elif partner in producer and producer[partner].op_type == "Mul" and other(producer[partner], x, 0.5):
            if only_reader(partner, "Mul") is not mul:
                continue
            chain, final = [scaled, erf, add, producer[partner], mul], mul  # (x * 0.5) * (1 + erf)
        else:
            continue
        replace[ids[id(final)]] = helper.make_node(
            "Gelu", [x], [final.output[0]], name=erf.name or final.name
        )
        drop.update(ids[id(n)] for n in chain if n is not final)
    if not replace:
        return model
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    del fused.graph.node[:]
    fused.graph.node.extend(replace.get(i, n) for i, n in enumerate(nodes) if i not in drop)
    return fused
