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

import math

import numpy as np
import torch
import torch.nn.functional as F

from q4sdk.progress import Progress
from q4sdk.ptq.plan import Step
from q4sdk.ptq.weights import int_range


def _per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-output-channel vector shaped to broadcast against ``like`` (N, C, ...)."""
    return v.reshape((1, -1) + (1,) * (like.dim() - 2)) if v.dim() == 1 else v


def _act(y: torch.Tensor, act) -> torch.Tensor:
    """The step's activation clamp as ``hardtanh``, whose backward is one fused op (``clamp``'s
    is three)."""
    return y if act is None else F.hardtanh(y, float(act[0]), float(act[1]))


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a vector in (N, H, W, C) order: a view for channels-last tensors, which is how the
    CPU convolutions hand their gradients back."""
    return (t.permute(0, 2, 3, 1) if t.dim() == 4 else t).reshape(-1)


class _FakeQuant(torch.autograd.Function):
    """Fake quantization with a straight-through rounding, as one autograd node.

    Forward: ``c * s`` with ``v = x / s`` and ``c = clamp(round(v), lo - zp, hi - zp)``. Backward
    (LSQ's estimator): the input gets the incoming gradient ``g`` where the code is inside the
    range and none where clamped; the scale gets ``round(v) - v`` inside and ``c`` outside, i.e.
    ``sum(g * c) - sum(v * g_x)``. One node, two saved tensors, no boolean masks (which are slow
    to build on CPU).
    """

    @staticmethod
    def forward(ctx, x, scale, zp: int, lo: int, hi: int):
        v = x / scale
        c = torch.round(v).clamp_(lo - zp, hi - zp)
        ctx.save_for_backward(v, c)
        ctx.limits = (lo - zp - 0.5, hi - zp + 0.5)
        return c * scale

    @staticmethod
    def backward(ctx, g):
        v, c = ctx.saved_tensors
        gx = torch.ops.aten.hardtanh_backward(g, v, *ctx.limits)  # g where lo' - .5 < v < hi' + .5
        gs = None
        if ctx.needs_input_grad[1]:
            gs = torch.dot(_flat(g), _flat(c)) - torch.dot(_flat(v), _flat(gx))
        return (gx if ctx.needs_input_grad[0] else None), gs, None, None, None


class _Adam:
    """Adam (Kingma & Ba 2015, torch's defaults: betas 0.9 / 0.999, eps 1e-8) on a list of tensors,
    with the learning rate given per step. Written out because ``torch.optim`` imports torch's
    compiler on first use (about 1 s of CPU), more than a short refinement's optimiser work."""

    def __init__(self, params: list[torch.Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.betas, self.eps, self.t = params, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1.0 - b1**self.t, math.sqrt(1.0 - b2**self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1.0 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
            p.addcdiv_(m, v.sqrt().div_(c2).add_(self.eps), value=-lr / c1)


def fake_quant_ste(x: torch.Tensor, scale: torch.Tensor, zp: int, bits: int) -> torch.Tensor:
    """Fake quantization whose rounding has an identity gradient (the scale, a 0-d tensor, gets
    LSQ's gradient)."""
    lo, hi = int_range(bits)
    return _FakeQuant.apply(x, torch.as_tensor(scale, dtype=torch.float32), int(zp), lo, hi)


def _loss(y: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between the quantized (``y``) and float (``t``) logits: ``"mse"``, or ``"kl"``,
    the Kullback-Leibler divergence of the quantized network's class distribution from the float
    one's (knowledge distillation at temperature 1), which weighs the logits that decide the class."""
    if kind == "kl":
        return F.kl_div(
            torch.log_softmax(y, 1), torch.log_softmax(t, 1), log_target=True, reduction="batchmean"
        )
    return (y - t).pow(2).mean()


def refine(
    input_name: str,
    output_name: str,
    steps: list[Step],
    qparams: dict,
    weights: dict,
    x: np.ndarray | torch.Tensor,
    forward,
    residual: str | None,
    iters: int,
    lr: float = 1e-3,
    batch: int = 128,
    seed: int = 0,
    progress: Progress | None = None,
    loss_kind: str = "mse",
    runs: int = 1,
    target: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
    check: int | None = None,
) -> dict:
    """Fit scale factors and bias offsets in place; returns {"loss_before", "loss_after", "applied"}.

    ``runs`` independent runs (run r draws its mini-batches from ``seed + 1000 r``) start from the
    same point and their log-factors and offsets are averaged. ``target`` (the float network's
    outputs on ``x``) and ``start`` (the quantized network's before refinement), when given, save
    the passes that would compute them. The result is kept if it lowers the loss on the first
    ``check`` samples (all when None).

    ``forward(step, xs, weight=None, bias=None) -> (pre_activation, output)`` is the pipeline's float
    step; ``qparams`` maps tensor -> QuantParams (shared objects for same-quant tensors);
    ``weights`` maps layer name -> LayerWeights.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 4:  # the CPU convolutions work in channels-last; so does everything around them
        x = x.contiguous(memory_format=torch.channels_last)

    def run(xb: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The quantized network with the factors ``params``, or the float one without them."""
        if params is None:
            vals = {input_name: xb}
            for step in steps:
                vals[step.output] = forward(step, [vals[i] for i in step.inputs])[1]
            return vals[output_name]
        p = qparams[input_name]
        s_in = p.scale * torch.exp(params["a:" + input_name])
        x1 = fake_quant_ste(xb, s_in, p.zero_point, p.bits)
        if residual:
            x1 = x1 + fake_quant_ste(xb - x1, s_in / (1 << p.bits), 0, p.bits)
        vals = {input_name: x1}
        for step in steps:
            xs = [vals[i] for i in step.inputs]
            if step.node.name in weights:
                # conv/dense are linear in each kernel's scale: conv(x, q*s*g) = conv(x, q*s) * g,
                # so gamma multiplies the output channel and the weights need no gradient
                out = bias[step.node.name] + params["b:" + step.node.name]
                for k, w_k in enumerate(fixed_weights[step.node.name]):
                    y, _ = forward(step, xs, weight=w_k, bias=zero_bias[step.node.name], with_act=False)
                    g = torch.exp(params[f"g{k}:" + step.node.name])
                    out = torch.addcmul(_per_channel(out, y), y, _per_channel(g, y))
                out = _act(out, step.act)
            else:
                out = _act(forward(step, xs, with_act=False)[0], step.act)
            if not step.same_quant:
                p = qparams[step.output]
                out = fake_quant_ste(
                    out, p.scale * torch.exp(params["a:" + step.output]), p.zero_point, p.bits
                )
            vals[step.output] = out
        return vals[output_name]

    fixed_weights: dict[str, list[torch.Tensor]] = {}  # per term: q * s, the starting weights
    zero_bias: dict[str, torch.Tensor] = {}
    bias: dict[str, torch.Tensor] = {}
    for step in steps:
        lw = weights.get(step.node.name)
        if lw is not None:
            shape = (-1,) + (1,) * (lw.q.ndim - 1)
            fixed_weights[step.node.name] = [
                torch.as_tensor(q.astype(np.float64) * s.reshape(shape), dtype=torch.float32)
                for q, s in lw.terms()
            ]
            zero_bias[step.node.name] = torch.zeros(lw.q.shape[0])
            bias[step.node.name] = torch.as_tensor(lw.bias, dtype=torch.float32)

    def new_params() -> dict[str, torch.Tensor]:
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
        return params

    params = new_params()
    with torch.no_grad():
        if target is None:
            target = torch.cat([run(x[i : i + 256]) for i in range(0, len(x), 256)])
        if start is None:
            start = torch.cat([run(x[i : i + 256], params) for i in range(0, len(x), 256)])
        n_check = len(x) if check is None else min(check, len(x))
        before = float(_loss(start[:n_check], target[:n_check], loss_kind))

    def fit(r: int) -> dict[str, torch.Tensor]:
        """One refinement run from the starting point, on its own mini-batch sequence."""
        params = new_params()
        gen = torch.Generator().manual_seed(seed + 1000 * r)
        opt = _Adam(list(params.values()))
        with torch.enable_grad():
            for it in range(iters):
                idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=gen)
                loss = _loss(run(x[idx], params), target[idx], loss_kind)
                for v in params.values():
                    v.grad = None
                loss.backward()
                opt.step(lr * 0.5 * (1.0 + math.cos(math.pi * it / max(iters, 1))))  # cosine schedule
                if progress and (it % 20 == 0 or it == iters - 1):
                    progress.update(
                        r * iters + it,
                        runs * iters,
                        f"refine scales{f' (run {r + 1}/{runs})' if runs > 1 else ''}: "
                        f"loss {loss.item():.4g}",
                    )
        return {k: v.detach() for k, v in params.items()}

    # several runs differ only in their mini-batches; their mean (a "soup" of the log-factors and
    # bias offsets) is less sensitive to which samples each run happened to draw than any one run
    fits = [fit(r) for r in range(runs)]
    params = {k: sum(f[k] for f in fits) / runs for k in fits[0]}
    with torch.no_grad():
        after = float(
            _loss(
                torch.cat([run(x[i : min(i + 256, n_check)], params) for i in range(0, n_check, 256)]),
                target[:n_check],
                loss_kind,
            )
        )
        # never make things worse, and leave a model whose loss is already at float noise alone:
        # KL ignores a common offset of the logits, which would drift there unchecked
        if before - after <= MIN_GAIN:
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


MIN_GAIN = 1e-6  # refinement is kept only if it lowers the loss by more than this
MIN_BATCH = 16  # the smallest mini-batch a MAC budget shrinks refinement's batches to
MIN_ITERS = 20  # fewer iterations than this within the budget: no refinement (they do little)


def budgeted(iters: int, batch: int, macs: int, budget: float | None) -> tuple[int, int]:
    """(iterations, batch) of a refinement whose mini-batches may cost at most ``budget`` forward
    MACs in all (``macs`` per sample): the batch shrinks first, down to ``MIN_BATCH``, then the
    iterations; (0, batch) when fewer than ``MIN_ITERS`` would remain."""
    if budget is None or macs <= 0 or iters * batch * macs <= budget:
        return iters, batch
    batch = max(MIN_BATCH, min(batch, int(budget // (iters * macs))))
    iters = min(iters, int(budget // (batch * macs)))
    return (iters if iters >= MIN_ITERS else 0), batch


def refine_model(model_pass) -> None:
    """Model step: refine the scales of a ``pipeline.ModelPass`` in place as its recipe says and
    record the losses in its ``meta["refine"]``. With ``refine_macs`` the mini-batches and then the
    iterations shrink to fit the budget, and the result is checked on at most a quarter of it."""
    mp, r = model_pass, model_pass.recipe
    iters, batch = budgeted(r.refine_iters, r.refine_batch, mp.macs, r.refine_macs)
    if iters == 0:
        mp.meta["refine"] = {"applied": False, "skipped": f"refine_macs budget below {MIN_ITERS} iterations"}
        return
    check = None if r.refine_macs is None or not mp.macs else max(64, int(r.refine_macs / 4 / mp.macs))
    mp.meta["refine"] = refine(
        mp.graph.input_name,
        mp.graph.output_name,
        mp.steps,
        mp.qparams,
        mp.weights,
        mp.calib,
        mp.forward,
        mp.residual_input,
        iters,
        r.refine_lr,
        batch=batch,
        seed=r.seed,
        progress=mp.progress,
        loss_kind=r.refine_loss,
        runs=r.refine_runs,
        target=mp.float_out,
        start=mp.quant_out,
        check=check,
    )
    if (iters, batch) != (r.refine_iters, r.refine_batch):
        mp.meta["refine"].update({"iters": iters, "batch": batch})
