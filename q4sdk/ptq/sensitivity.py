"""Which layers get dual INT4 weights and which activations residual INT4 pairs: per-layer sensitivity
within a budget of extra multiply-accumulates (recipe field ``sensitivity_budget``).

Both methods (Choukroun et al. 2019) make one layer or one tensor nearly exact at the price of a
second integer term: a dual weight runs its layer twice, a residual activation runs the conv /
dense layers that read it twice. Which ones are worth it depends on the model, so instead of fixed
positions each candidate is measured on a few calibration samples: the float network is run with
that one thing quantized (the layer's weights per kernel with MMSE scales and nearest rounding,
or the tensor on its MMSE activation grid) and the KL divergence of its class distribution from
the float one's is the candidate's sensitivity, the loss the second term would remove. Candidates
are taken by sensitivity per extra MAC, most first, while their extra MACs together stay within
``sensitivity_budget`` times the network's. Candidates that alone exceed the budget are not
measured at all, which keeps the pass cheap on large models.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from q4sdk.ir.ops import OPS, WEIGHTED_KINDS
from q4sdk.ptq.methods import ACTIVATION_RANGE, WEIGHT_SCALE
from q4sdk.ptq.weights import int_range, quantize_to_int

#: kinds whose multi-term form has an optimised kernel (``OpSpec.terms_variants``): the only
#: candidates for dual weights, and the only readers a residual-quantized tensor may have
FAST_MULTI_TERM_KINDS = frozenset(k for k, spec in OPS.items() if spec.terms_variants)

SAMPLES = 64  # calibration samples each candidate is measured on ...
SAMPLE_MACS = 2e10  # ... fewer (down to 16) when 64 forward passes would exceed this many MACs


def _kl(y: torch.Tensor, t: torch.Tensor) -> float:
    return float(
        F.kl_div(torch.log_softmax(y, 1), torch.log_softmax(t, 1), log_target=True, reduction="batchmean")
    )


def _fake(x: torch.Tensor, scale: float, zero_point: int, bits: int) -> torch.Tensor:
    lo, hi = int_range(bits)
    return torch.clamp(torch.round(x / scale) + zero_point, lo, hi).sub_(zero_point).mul_(scale)


def layer_macs(graph, steps, calib: np.ndarray, forward) -> dict[str, int]:
    """MACs per sample of each conv / dense layer (the budget's base), from one sample's pass."""
    macs: dict[str, int] = {}
    with torch.no_grad():
        vals = {graph.input_name: torch.as_tensor(calib[:1])}
        for step in steps:
            pre, vals[step.output] = forward(step, [vals[i] for i in step.inputs])
            if step.kind in WEIGHTED_KINDS:
                w = step.node.params["weight"]
                macs[step.node.name] = int(pre[0].numel() // w.shape[0] * np.prod(w.shape))
    return macs


def choose(graph, steps, calib: np.ndarray, recipe, forward) -> tuple[list[str], list[str], list[dict]]:
    """(dual layer names, residual tensor names, one record per candidate) for ``recipe``'s budget.

    ``forward(step, xs, weight=None, bias=None) -> (pre_activation, output)`` is the pipeline's
    float step. Residual candidates exist at 4-bit activations only: tensors produced by an op
    that requantizes and read by a conv / dense layer (directly or through ops that keep the
    quantization), not the network input or output."""
    macs = layer_macs(graph, steps, calib, forward)
    with torch.no_grad():
        total = max(sum(macs.values()), 1)
        n = int(min(SAMPLES, max(16, SAMPLE_MACS // total)))
        vals = {graph.input_name: torch.as_tensor(calib[:n])}
        for step in steps:
            vals[step.output] = forward(step, [vals[i] for i in step.inputs])[1]
    budget = recipe.sensitivity_budget * total
    target = vals[graph.output_name]

    # residual candidates: the conv / dense layers reading each requantized tensor
    producer = {s.output: s for s in steps}
    readers: dict[str, list[str]] = {}
    for step in steps:
        if step.kind not in WEIGHTED_KINDS:
            continue
        t = step.inputs[0]
        while t in producer and producer[t].same_quant:
            t = producer[t].inputs[0]
        readers.setdefault(t, []).append(step.node.name)

    # only layers with an optimised multi-term kernel (conv2d, depthwise, fully_connected) become
    # multi-term: elsewhere (transposed conv) the portable multi-term kernel costs 20-40x the
    # single-term one on the target, far more than its extra MACs say
    kinds = {s.node.name: s.kind for s in steps}
    candidates = []  # (kind, name, step index, extra macs)
    for idx, step in enumerate(steps):
        if step.kind in FAST_MULTI_TERM_KINDS:
            candidates.append(("dual", step.node.name, idx, macs[step.node.name]))
        if (
            recipe.activation_bits == 4
            and not step.same_quant
            and step.output != graph.output_name
            and step.output in readers
            and all(kinds[r] in FAST_MULTI_TERM_KINDS for r in readers[step.output])
        ):
            candidates.append(("residual", step.output, idx, sum(macs[r] for r in readers[step.output])))

    bits, act_bits = recipe.weight_bits, recipe.activation_bits
    records = []
    with torch.no_grad():
        for kind, name, idx, extra in candidates:
            if extra > budget:
                continue
            step = steps[idx]
            v = dict(vals)
            if kind == "dual":
                w = np.asarray(step.node.params["weight"], np.float64)
                w2 = w.reshape(w.shape[0], -1)
                s = WEIGHT_SCALE[recipe.weight_scale](w2, bits, recipe)
                w_hat = (quantize_to_int(w2, s, bits) * s[:, None]).reshape(w.shape)
                v[step.output] = forward(step, [v[i] for i in step.inputs], weight=w_hat)[1]
            else:
                scale, zp = ACTIVATION_RANGE[recipe.activation_range](
                    v[name].contiguous().numpy(), act_bits, recipe.unsigned_activations, recipe
                )
                v[name] = _fake(v[name], scale, zp, act_bits)
            for later in steps[idx + 1 :]:
                v[later.output] = forward(later, [v[i] for i in later.inputs])[1]
            records.append(
                {"kind": kind, "name": name, "extra_macs": extra, "kl": _kl(v[graph.output_name], target)}
            )

    # most loss removed per extra MAC first, while the budget lasts
    order = sorted(records, key=lambda r: (-r["kl"] / max(r["extra_macs"], 1), r["kind"], r["name"]))
    spent = 0
    for r in order:
        r["chosen"] = r["kl"] > 0 and spent + r["extra_macs"] <= budget
        if r["chosen"]:
            spent += r["extra_macs"]
    dual = [r["name"] for r in records if r["chosen"] and r["kind"] == "dual"]
    residual = [r["name"] for r in records if r["chosen"] and r["kind"] == "residual"]
    return dual, residual, records
