"""Lowering plan: which integer op each float node (or fused pair) becomes.

A conv / dense / add / sub / mul followed by a ReLU or Clip that is its only consumer is fused into one step whose
output is the activation's output. Every step output is a quantized tensor; steps marked
``same_quant`` (``q4sdk.ir.ops``: maxpool, clamp, pad, reshape) reuse their input's quantization parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from q4sdk.errors import Q4Error
from q4sdk.ir.float_graph import FloatGraph, FloatNode
from q4sdk.ir.ops import OPS

#: float op -> the integer kind it lowers to (from the op table; a conv with one input channel
#: per group is depthwise)
KIND_OF_FLOAT_OP = {}
for _kind, _spec in OPS.items():
    for _op in _spec.float_ops:
        KIND_OF_FLOAT_OP.setdefault(_op, _kind)


@dataclass
class Step:
    kind: str
    node: FloatNode
    inputs: list[str]
    output: str  # float tensor holding the (fused) result
    pre_act: str  # float tensor before the fused activation (== output if none)
    act: tuple[float, float] | None  # fused activation bounds in the real domain
    flatten_from: tuple[int, ...] | None = None  # dense after a flatten of (C, H, W)
    chw_order: bool = False  # a flatten of (C, H, W) whose reader needs the C-order (lowering)

    @property
    def same_quant(self) -> bool:
        return OPS[self.kind].same_quant


def _act_bounds(node: FloatNode) -> tuple[float, float]:
    if node.op == "relu":
        return 0.0, float("inf")
    return float(node.attrs.get("lo", float("-inf"))), float(node.attrs.get("hi", float("inf")))


def _flatten_of_map(graph: FloatGraph, node: FloatNode | None) -> bool:
    """``node`` flattens a (C, H, W) map with C > 1 and H * W > 1: the integer reshape keeps the
    channels-last bytes, so its output is in (H, W, C) order, not the float model's C-order."""
    if node is None or node.op != "reshape" or "shape" in node.attrs:
        return False
    shp = graph.shapes[node.inputs[0]]
    return len(shp) == 3 and shp[0] > 1 and shp[1] * shp[2] > 1


def _dense_readers_only(graph: FloatGraph, node: FloatNode, consumers) -> bool:
    """Every reader of ``node``'s output is a dense layer (which permutes its columns to the
    stored order instead, ``Step.flatten_from``) and it is not the model output."""
    readers = consumers.get(node.output, [])
    return node.output != graph.output_name and all(c.op == "fully_connected" for c in readers)


def build_plan(graph: FloatGraph) -> list[Step]:
    consumers = graph.consumers()
    producer = graph.node_by_output()
    fused: set[str] = set()
    steps: list[Step] = []
    for node in graph.nodes:
        if node.name in fused:
            continue
        out, act = node.output, None
        if node.op in ("conv2d", "fully_connected", "add", "sub", "mul", "conv_transpose"):
            cons = consumers.get(node.output, [])
            if len(cons) == 1 and cons[0].op in ("relu", "clamp") and node.output != graph.output_name:
                act = _act_bounds(cons[0])
                out = cons[0].output
                fused.add(cons[0].name)
        kind = KIND_OF_FLOAT_OP.get(node.op)
        if kind is None:
            raise Q4Error(f"node '{node.name}': op '{node.op}' cannot be quantized")
        if kind == "conv2d" and int(node.attrs.get("groups", 1)) != 1 and node.params["weight"].shape[1] == 1:
            kind = "depthwise_conv2d"  # one input channel per group (channel multiplier O / C)
        if kind == "add" and graph.shapes[node.inputs[0]] != graph.shapes[node.inputs[1]]:
            kind = "addsub"  # a (C, 1, 1) second input, added at every pixel
        if kind == "clamp":
            act = _act_bounds(node)
        flatten_from = None
        if kind == "fully_connected":
            src = producer.get(node.inputs[0])
            if src is not None and src.op == "reshape":
                shp = graph.shapes[src.inputs[0]]
                if (
                    len(shp) == 3
                    and shp[1] * shp[2] > 1
                    and not (_flatten_of_map(graph, src) and not _dense_readers_only(graph, src, consumers))
                ):
                    flatten_from = tuple(shp)
        chw_order = _flatten_of_map(graph, node) and not _dense_readers_only(graph, node, consumers)
        steps.append(Step(kind, node, list(node.inputs), out, node.output, act, flatten_from, chw_order))
    return steps
