"""Refinement of the quantization scales by gradient descent (Choukroun et al. 2019, section 3.4).

After the layer-by-layer pass, every per-kernel weight scale gets a learnable factor ``gamma``
(``exp`` of a parameter initialised at 0), every quantized activation tensor a learnable scale
factor, and every layer a learnable bias offset. The integer weights stay as chosen. The whole
quantized network is simulated with fake quantization, rounding passed straight through in the
backward pass, and the factors are fitted by Adam to make the quantized network's outputs match
the float network's on the calibration set (mean squared error of the logits, or their KL
divergence). The integer program (biases, multipliers, shifts) is then re-derived from the refined
scales by the lowering.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..progress import Progress
from .plan import Step
from .weights import int_range


def fake_quant_ste(x: torch.Tensor, scale: torch.Tensor, zp: int, bits: int) -> torch.Tensor:
    """Fake quantization whose rounding has an identity gradient (the scale gets LSQ's gradient)."""
    lo, hi = int_range(bits)
    v = x / scale
    v = v + (torch.round(v) - v).detach()
    return (torch.clamp(v + zp, lo, hi) - zp) * scale


def _loss(y: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between the quantized (``y``) and float (``t``) logits: ``"mse"``, or ``"kl"``,
    the Kullback-Leibler divergence of the quantized network's class distribution from the float
    one's (knowledge distillation at temperature 1), which weighs the logits that decide the class."""
    if kind == "kl":
        return F.kl_div(torch.log_softmax(y, 1), torch.log_softmax(t, 1), log_target=True,
                        reduction="batchmean")
    return (y - t).pow(2).mean()


def refine(input_name: str, output_name: str, steps: list[Step], qparams: dict, weights: dict,
           x: np.ndarray | torch.Tensor, forward, residual: str | None, iters: int, lr: float = 1e-3,
           batch: int = 128, seed: int = 0, progress: Progress | None = None,
           loss_kind: str = "mse") -> dict:
    """Fit scale factors and bias offsets in place; returns {"loss_before", "loss_after"}.

    ``forward(step, xs, weight=None, bias=None) -> (pre_activation, output)`` is the pipeline's float
    step; ``qparams`` maps tensor -> QuantParams (shared objects for same-quant tensors);
    ``weights`` maps layer name -> LayerWeights.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)

    def run(xb: torch.Tensor, params=None, quant=True) -> torch.Tensor:
        vals = {}
        if quant:
            p = qparams[input_name]
            s_in = p.scale * torch.exp(params["a:" + input_name]) if params else torch.tensor(p.scale)
            x1 = fake_quant_ste(xb, s_in, p.zero_point, p.bits)
            if residual:
                x1 = x1 + fake_quant_ste(xb - x1, s_in / (1 << p.bits), 0, p.bits)
            vals[input_name] = x1
        else:
            vals[input_name] = xb
        for step in steps:
            xs = [vals[i] for i in step.inputs]
            lw = weights.get(step.node.name)
            if lw is not None and quant:
                shape = (-1,) + (1,) * (lw.q.ndim - 1)
                w_hat = 0
                for k, (q, s) in enumerate(lw.terms()):
                    g = torch.exp(params[f"g{k}:" + step.node.name]) if params else 1.0
                    w_hat = w_hat + torch.as_tensor(q, dtype=torch.float32) * (
                        torch.as_tensor(s, dtype=torch.float32) * g).reshape(shape)
                b = torch.as_tensor(lw.bias, dtype=torch.float32)
                if params:
                    b = b + params["b:" + step.node.name]
                _, out = forward(step, xs, weight=w_hat, bias=b)
            else:  # the float path, or a layer without weights
                _, out = forward(step, xs)
            if quant and not step.same_quant:
                p = qparams[step.output]
                s_out = p.scale * torch.exp(params["a:" + step.output]) if params else torch.tensor(p.scale)
                out = fake_quant_ste(out, s_out, p.zero_point, p.bits)
            vals[step.output] = out
        return vals[output_name]

    params: dict[str, torch.Tensor] = {"a:" + input_name: torch.zeros(())}
    for step in steps:
        lw = weights.get(step.node.name)
        if lw is not None:
            for k, (_, s) in enumerate(lw.terms()):
                params[f"g{k}:" + step.node.name] = torch.zeros(len(s))
            params["b:" + step.node.name] = torch.zeros(len(lw.bias))
        if not step.same_quant:
            params["a:" + step.output] = torch.zeros(())
    for v in params.values():
        v.requires_grad_(True)

    with torch.no_grad():
        target = torch.cat([run(x[i:i + 256], quant=False) for i in range(0, len(x), 256)])
        before = float(_loss(torch.cat([run(x[i:i + 256], params) for i in range(0, len(x), 256)]),
                             target, loss_kind))
    opt = torch.optim.Adam(params.values(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iters, 1))
    with torch.enable_grad():
        for it in range(iters):
            idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=gen)
            loss = _loss(run(x[idx], params), target[idx], loss_kind)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if progress and (it % 20 == 0 or it == iters - 1):
                progress.update(it, iters, f"refine scales: loss {loss.item():.4g}")
    with torch.no_grad():
        after = float(_loss(torch.cat([run(x[i:i + 256], params) for i in range(0, len(x), 256)]),
                            target, loss_kind))
        if after >= before:  # never make things worse
            return {"loss_before": before, "loss_after": before, "applied": False}
        for step in steps:
            lw = weights.get(step.node.name)
            if lw is None:
                continue
            lw.scales = lw.scales * np.exp(params["g0:" + step.node.name].double().numpy())
            if lw.q2 is not None:
                lw.scales2 = lw.scales2 * np.exp(params["g1:" + step.node.name].double().numpy())
            lw.bias = lw.bias + params["b:" + step.node.name].double().numpy()
        seen = set()
        for key, v in params.items():
            if key.startswith("a:") and id(qparams[key[2:]]) not in seen:
                seen.add(id(qparams[key[2:]]))
                qparams[key[2:]].scale = float(qparams[key[2:]].scale * np.exp(float(v)))
        if residual:
            qparams[residual].scale = qparams[input_name].scale / (1 << qparams[input_name].bits)
    return {"loss_before": before, "loss_after": after, "applied": True}
