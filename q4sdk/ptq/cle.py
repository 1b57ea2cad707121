"""Cross-layer equalization and bias absorption on a FloatGraph (Nagel et al. 2019).

**Equalization.** For two consecutive layers ``y = W2 f(W1 x + b1) + b2`` where f is the identity
or ReLU, ``f(z / s) = f(z) / s`` for any positive per-channel s, so dividing output channel i of
layer 1 (weights and bias) by ``s_i`` and multiplying input channel i of layer 2 by ``s_i`` leaves
the function unchanged. With ``r1_i`` the range (max |w|) of layer 1's output channel i and
``r2_i`` that of layer 2's input channel i, ``s_i = sqrt(r1_i * r2_i) / r2_i`` makes both ranges
``sqrt(r1_i * r2_i)``: the per-channel ranges of both layers become balanced, which helps
per-tensor and low-bit per-channel quantizers. Chains of more than two layers converge by
repeating the pass (``iters``). Clip (e.g. ReLU6) is not scale-invariant and ends a pair.

**Bias absorption.** Equalization can leave large biases in layer 1, i.e. wide activation
ranges. With pre-activation statistics ``(beta_i, gamma_i)`` = (mean, std) of channel i,
``c_i = max(0, beta_i - n_sigma * gamma_i)`` is subtracted from ``b1_i`` and ``W2 c`` added to
``b2``. Since ``relu(z) = relu(z - c) + c`` whenever ``z >= c``, this is exact for every
activation at least ``c_i``; for Gaussian pre-activations and n_sigma = 3 about 0.13% of values
lie below and are changed by at most ``c_i``. Where layer 2 is a convolution with zero padding,
border outputs whose window covers padding also change (the padded taps saw 0, not c); the
calibration-based pipeline measures rather than assumes this effect.

Pairs are ``conv|dense -> [relu] -> conv|dense`` where every intermediate tensor has exactly one
consumer and is not the graph output. Grouped/depthwise convolutions are handled through their
channel grouping (depthwise: channel in = channel out). Neither function mutates its input graph.
"""

from __future__ import annotations

import copy

import numpy as np

from q4sdk.ir.float_graph import FloatGraph, FloatNode

LINEAR_OPS = ("conv2d", "fully_connected")


def _is_relu(node: FloatNode) -> bool:
    if node.op == "relu":
        return True
    return node.op == "clamp" and node.attrs.get("lo") == 0.0 and node.attrs.get("hi") == float("inf")


def equalizable_pairs(graph: FloatGraph) -> list[tuple[FloatNode, FloatNode | None, FloatNode]]:
    """``(layer1, relu or None, layer2)`` triples of ``graph`` that CLE may rescale, in graph order."""
    consumers = graph.consumers()

    def only_consumer(tensor: str) -> FloatNode | None:
        users = consumers.get(tensor, [])
        if len(users) != 1 or tensor == graph.output_name:
            return None
        return users[0]

    pairs = []
    for node in graph.nodes:
        if node.op not in LINEAR_OPS:
            continue
        nxt = only_consumer(node.output)
        mid = None
        if nxt is not None and _is_relu(nxt):
            mid, nxt = nxt, only_consumer(nxt.output)
        if nxt is not None and nxt.op in LINEAR_OPS and nxt.op == node.op:
            pairs.append((node, mid, nxt))
    return pairs


def _groups(node: FloatNode) -> int:
    return int(node.attrs.get("groups", 1)) if node.op == "conv2d" else 1


def _in_channel_view(node: FloatNode) -> np.ndarray:
    """Layer 2's weight rearranged to ``[C_in, ...]`` (a copy): row i = all weights reading
    input channel i. For a grouped conv [O, I/g, kh, kw] input channel i is group i // (I/g)."""
    w = node.params["weight"]
    g = _groups(node)
    if g == 1:
        return np.moveaxis(w, 1, 0)
    o, ipg = w.shape[0], w.shape[1]
    wg = w.reshape(g, o // g, ipg, *w.shape[2:])  # [g, O/g, I/g, ...]
    return np.moveaxis(wg, 2, 1).reshape(g * ipg, o // g, *w.shape[2:])


def _scale_in_channels(node: FloatNode, s: np.ndarray) -> None:
    """Multiply every weight of ``node`` that reads input channel i by ``s[i]`` (in place)."""
    w = node.params["weight"]
    g = _groups(node)
    shape = (1, -1) + (1,) * (w.ndim - 2)
    if g == 1:
        node.params["weight"] = (w * s.reshape(shape)).astype(w.dtype)
        return
    o, ipg = w.shape[0], w.shape[1]
    s_g = s.reshape(g, 1, ipg, *(1,) * (w.ndim - 2))
    wg = w.reshape(g, o // g, ipg, *w.shape[2:]) * s_g
    node.params["weight"] = wg.reshape(w.shape).astype(w.dtype)


def _in_channel_sums(node: FloatNode, c: np.ndarray) -> np.ndarray:
    """``delta[o] = sum of weights of output o reading input channel i, times c[i]`` (W2 c)."""
    w = node.params["weight"].astype(np.float64)
    g = _groups(node)
    if g == 1:
        return w.reshape(w.shape[0], w.shape[1], -1).sum(axis=2) @ c
    o, ipg = w.shape[0], w.shape[1]
    wg = w.reshape(g, o // g, ipg, -1).sum(axis=3)  # [g, O/g, I/g]
    return np.einsum("gpi,gi->gp", wg, c.reshape(g, ipg)).reshape(o)


def channel_ranges(node: FloatNode) -> tuple[np.ndarray, np.ndarray]:
    """(per-output-channel max |w|, per-input-channel max |w|) of a conv/dense node."""
    w = np.abs(node.params["weight"].astype(np.float64))
    out_r = w.reshape(w.shape[0], -1).max(axis=1)
    in_v = _in_channel_view(node)
    in_r = np.abs(in_v).reshape(in_v.shape[0], -1).max(axis=1)
    return out_r, in_r


def equalize(graph: FloatGraph, iters: int = 2) -> FloatGraph:
    """Cross-layer equalization of every equalizable pair, ``iters`` passes; returns a new graph."""
    out = copy.deepcopy(graph)
    pairs = equalizable_pairs(out)
    for _ in range(iters):
        for layer1, _mid, layer2 in pairs:
            r1, _ = channel_ranges(layer1)
            _, r2 = channel_ranges(layer2)
            ok = (r1 > 0) & (r2 > 0)
            s = np.where(ok, np.sqrt(np.where(ok, r1 / np.where(r2 > 0, r2, 1.0), 1.0)), 1.0)
            w1 = layer1.params["weight"]
            layer1.params["weight"] = (w1 / s.reshape((-1,) + (1,) * (w1.ndim - 1))).astype(w1.dtype)
            b1 = layer1.params["bias"]
            layer1.params["bias"] = (b1 / s).astype(b1.dtype)
            _scale_in_channels(layer2, s)
    return out


def absorb_bias(
    graph: FloatGraph, act_stats: dict[str, tuple[np.ndarray, np.ndarray]], n_sigma: float = 3.0
) -> FloatGraph:
    """Move ``c = max(0, mean - n_sigma * std)`` from layer 1's bias into layer 2's bias for every
    ``conv|dense -> relu -> conv|dense`` pair whose layer-1 output tensor (the pre-activation)
    has an entry ``(mean [C], std [C])`` in ``act_stats``. Returns a new graph."""
    out = copy.deepcopy(graph)
    for layer1, mid, layer2 in equalizable_pairs(out):
        if mid is None or layer1.output not in act_stats:
            continue
        mean, std = (np.asarray(a, np.float64).reshape(-1) for a in act_stats[layer1.output])
        n_ch = layer1.params["weight"].shape[0]
        if mean.shape != (n_ch,) or std.shape != (n_ch,):
            raise ValueError(
                f"absorb_bias: statistics of {layer1.output!r} have {mean.size} / "
                f"{std.size} channels, node {layer1.name!r} has {n_ch}"
            )
        c = np.maximum(0.0, mean - n_sigma * std)
        b1, b2 = layer1.params["bias"], layer2.params["bias"]
        layer1.params["bias"] = (b1 - c).astype(b1.dtype)
        layer2.params["bias"] = (b2 + _in_channel_sums(layer2, c)).astype(b2.dtype)
    return out
