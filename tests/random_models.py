"""Random integer models for the C-side tests: ``random_model`` builds small random QModels that
cover every op kind, ``random_input`` feeds them, and the builders compile the generated C (cffi, or
a sanitizer build) so tests can compare it with the oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from q4sdk.codegen.render import generate
from q4sdk.ir.oracle import run_oracle
from q4sdk.ir.qmodel import QModel, QOp, QTensor
from q4sdk.targets.host_build import CModel

WARN_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]


# --------------------------------------------------------------------------- random models


class _Builder:
    """Grows a random QModel one op at a time from a numpy Generator."""

    def __init__(self, rng: np.random.Generator, shape, bits=None, extreme=False):
        self.rng, self.extreme = rng, extreme
        self.tensors: dict[str, QTensor] = {}
        self.ops: list[QOp] = []
        self.cur = self.tensor(tuple(shape), bits)
        self.input = self.cur

    def tensor(self, shape, bits=None) -> str:
        rng = self.rng
        bits = int(bits or rng.choice([4, 8]))
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        zp = 0 if rng.random() < 0.4 else int(rng.integers(qmin, qmax + 1))
        name = f"t{len(self.tensors)}"
        self.tensors[name] = QTensor(
            name, tuple(int(d) for d in shape), bits, float(rng.uniform(0.01, 0.5)), zp
        )
        return name

    def like(self, src: str, shape) -> str:
        """A new tensor with the quantization of ``src`` (ops that keep the quantization)."""
        t = self.tensors[src]
        name = f"t{len(self.tensors)}"
        self.tensors[name] = QTensor(name, tuple(int(d) for d in shape), t.bits, t.scale, t.zero_point)
        return name

    def act(self, out: str) -> dict:
        t = self.tensors[out]
        if self.extreme or self.rng.random() < 0.5:
            return {"act_min": t.qmin, "act_max": t.qmax}
        lo = int(self.rng.integers(t.qmin, max(t.zero_point, t.qmin) + 1))
        hi = int(self.rng.integers(max(lo, t.zero_point), t.qmax + 1))
        return {"act_min": lo, "act_max": hi}

    def requant(self, n: int, acc_scale: float, out: str):
        """Multipliers/shifts that map a typical |acc| of ``acc_scale`` onto the output range."""
        rng = self.rng
        m = rng.integers(1 << 30, 1 << 31, size=n, dtype=np.int64)
        target = (1 << self.tensors[out].bits) / 2
        base = int(np.clip(np.round(31 + np.log2(max(acc_scale, 1.0) / target)), 1, 60))
        s = np.clip(base + rng.integers(-2, 3, size=n), 1, 62)
        if self.extreme:
            s = np.clip(s - 6, 1, 62)  # saturate
        m[rng.random(n) < 0.05] = 0
        return m.astype(np.int32), s.astype(np.int32)

    def multi_term(self, op: QOp, o: int, acc_scale: float) -> None:
        """Sometimes turn a weighted op into a multi-term one: dual weights (weight2) and/or a
        second, residual-quantized input of the same shape; multipliers become [T, O]."""
        rng = self.rng
        if rng.random() < 0.5:
            return
        mode = int(rng.integers(3))  # 0: dual weights, 1: residual input, 2: both
        if mode != 1:
            op.arrays["weight2"] = self.weights(op.arrays["weight"].shape)
        if mode != 0:
            shape = self.tensors[op.inputs[0]].shape
            same = [t for t in self.tensors if self.tensors[t].shape == shape and t != op.output]
            op.inputs.append(same[int(rng.integers(len(same)))])
        n_terms = len(op.inputs) * (2 if "weight2" in op.arrays else 1)
        target = (1 << self.tensors[op.output].bits) / 2
        base = int(np.clip(np.round(29 + np.log2(max(acc_scale, 1.0) / target)), 1, 60))
        op.arrays["multiplier"] = rng.integers(-(1 << 29) + 1, 1 << 29, size=(n_terms, o)).astype(np.int32)
        op.arrays["shift"] = np.clip(base + rng.integers(-2, 3, size=o), 1, 62).astype(np.int32)

    def emit(self, kind, inputs, out, attrs=None, arrays=None) -> str:
        """Append an op writing the (already created) tensor ``out``."""
        self.ops.append(
            QOp(f"op{len(self.ops)}_{kind}", kind, list(inputs), out, dict(attrs or {}), dict(arrays or {}))
        )
        return out

    def window(self, k_max=5):
        rng = self.rng
        h, w, _ = self.tensors[self.cur].shape
        kh = int(rng.choice([k for k in (1, 2, 3, 5) if k <= min(k_max, h + 2)] or [1]))
        kw = int(rng.choice([k for k in (1, 2, 3, 5) if k <= min(k_max, w + 2)] or [1]))
        stride = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
        pads = [
            int(rng.integers(0, kh)),
            int(rng.integers(0, kw)),
            int(rng.integers(0, kh)),
            int(rng.integers(0, kw)),
        ]
        ho = (h + pads[0] + pads[2] - kh) // stride[0] + 1
        wo = (w + pads[1] + pads[3] - kw) // stride[1] + 1
        if ho < 1 or wo < 1:
            return None
        return kh, kw, stride, pads, ho, wo

    def weights(self, shape):
        if self.extreme:
            return np.full(shape, -8, np.int8)
        return self.rng.integers(-8, 8, size=shape).astype(np.int8)

    def bias(self, n, k):
        return self.rng.integers(-40 * k - 100, 40 * k + 100, size=n).astype(np.int32)

    def conv(self, depthwise=False):
        win = self.window()
        if win is None:
            return
        kh, kw, stride, pads, ho, wo = win
        c = self.tensors[self.cur].shape[2]
        o = c if depthwise else int(self.rng.integers(1, 9))
        k = kh * kw * (1 if depthwise else c)
        w = self.weights((c, kh, kw) if depthwise else (o, kh, kw, c))
        out = self.tensor((ho, wo, o))
        m, s = self.requant(o, 20.0 * np.sqrt(k) * 4, out)
        kind = "depthwise_conv2d" if depthwise else "conv2d"
        self.cur = self.emit(
            kind,
            [self.cur],
            out,
            {"stride": stride, "pads": pads, **self.act(out)},
            {"weight": w, "bias": self.bias(o, k), "multiplier": m, "shift": s},
        )
        self.multi_term(self.ops[-1], o, 20.0 * np.sqrt(k) * 4)

    def pool(self, kind):
        win = self.window(k_max=3)
        if win is None:
            return
        kh, kw, stride, pads, ho, wo = win
        c = self.tensors[self.cur].shape[2]
        attrs = {"kernel": [kh, kw], "stride": stride, "pads": pads}
        if kind == "maxpool":
            out = self.like(self.cur, (ho, wo, c))
            self.cur = self.emit(kind, [self.cur], out, attrs)
        else:
            out = self.tensor((ho, wo, c))
            m, s = self.requant(1, 8.0 * kh * kw, out)
            self.cur = self.emit(
                kind, [self.cur], out, {**attrs, **self.act(out)}, {"multiplier": m, "shift": s}
            )

    def global_avgpool(self):
        h, w, c = self.tensors[self.cur].shape
        out = self.tensor((1, 1, c))
        m, s = self.requant(1, 8.0 * h * w, out)
        self.cur = self.emit("global_avgpool", [self.cur], out, self.act(out), {"multiplier": m, "shift": s})

    def add(self):
        shape = self.tensors[self.cur].shape
        a = self.cur
        same = [t for t in self.tensors if self.tensors[t].shape == shape and t != a]
        b = same[int(self.rng.integers(len(same)))] if same else a
        out = self.tensor(shape)
        mult = self.rng.integers(0, 1 << 21, size=2).astype(np.int32)
        shift = 14 if self.extreme else int(self.rng.integers(14, 31))
        self.cur = self.emit("add", [a, b], out, {"shift": shift, **self.act(out)}, {"multiplier": mult})

    def concat(self):
        """The current tensor and 1-3 others of its (H, W) side by side; sometimes the output
        keeps the current tensor's quantization, which that input then copies (m = 2^30, s = 30)."""
        rng = self.rng
        a = self.cur
        lead = self.tensors[a].shape[:-1]
        same = [t for t in self.tensors if self.tensors[t].shape[:-1] == lead]
        ins = [a] + [same[int(rng.integers(len(same)))] for _ in range(int(rng.integers(1, 4)))]
        shape = (*lead, sum(self.tensors[t].shape[-1] for t in ins))
        copy = rng.random() < 0.5
        out = self.like(a, shape) if copy else self.tensor(shape)
        m, s = self.requant(len(ins), 128.0, out)
        if copy:
            m[0], s[0] = 1 << 30, 30
        self.cur = self.emit("concat", ins, out, self.act(out), {"multiplier": m, "shift": s})

    def clamp(self):
        out = self.like(self.cur, self.tensors[self.cur].shape)
        self.cur = self.emit("clamp", [self.cur], out, self.act(out))

    def lut(self):
        """A table lookup: a random int8 table over the input's codes, in the output's range."""
        in_t = self.tensors[self.cur]
        out = self.tensor(in_t.shape)
        o = self.tensors[out]
        table = self.rng.integers(o.qmin, o.qmax + 1, size=1 << in_t.bits).astype(np.int8)
        self.cur = self.emit("lut", [self.cur], out, {}, {"table": table})

    def _second_operand(self) -> str:
        """A tensor of the current shape, or (for a feature map) a new (1, 1, C) one read per channel."""
        shape = self.tensors[self.cur].shape
        if len(shape) == 3 and self.rng.random() < 0.5:
            c = shape[2]  # the per-channel operand: a global pool of the current tensor
            out = self.tensor((1, 1, c))
            m, s = self.requant(1, 8.0 * shape[0] * shape[1], out)
            return self.emit("global_avgpool", [self.cur], out, self.act(out), {"multiplier": m, "shift": s})
        same = [t for t in self.tensors if self.tensors[t].shape == shape and t != self.cur]
        return same[int(self.rng.integers(len(same)))] if same else self.cur

    def mul(self):
        """a * b, b of the same shape or one value per channel."""
        a, b = self.cur, self._second_operand()
        out = self.tensor(self.tensors[a].shape)
        m, s = self.requant(1, 4000.0, out)
        self.cur = self.emit("mul", [a, b], out, self.act(out), {"multiplier": m, "shift": s})

    def addsub(self):
        """a * ma + b * mb with signed multipliers, b of the same shape or one value per channel."""
        a, b = self.cur, self._second_operand()
        out = self.tensor(self.tensors[a].shape)
        mult = self.rng.integers(-(1 << 21) + 1, 1 << 21, size=2).astype(np.int32)
        shift = 14 if self.extreme else int(self.rng.integers(14, 31))
        self.cur = self.emit("addsub", [a, b], out, {"shift": shift, **self.act(out)}, {"multiplier": mult})

    def lut_channel(self):
        """One random table per channel over the input's codes, in the output's range."""
        in_t = self.tensors[self.cur]
        out = self.tensor(in_t.shape)
        o = self.tensors[out]
        table = self.rng.integers(o.qmin, o.qmax + 1, size=(in_t.shape[-1], 1 << in_t.bits)).astype(np.int8)
        self.cur = self.emit("lut_channel", [self.cur], out, {}, {"table": table})

    def pad(self):
        h, w, c = self.tensors[self.cur].shape
        pads = [int(v) for v in self.rng.integers(0, 3, size=4)]
        out = self.like(self.cur, (h + pads[0] + pads[2], w + pads[1] + pads[3], c))
        self.cur = self.emit("pad", [self.cur], out, {"pads": pads})

    def flatten_fc(self):
        in_t = self.tensors[self.cur]
        flat = self.emit("reshape", [self.cur], self.like(self.cur, (in_t.size,)))
        o = int(self.rng.integers(1, 12))
        out = self.tensor((o,))
        m, s = self.requant(o, 20.0 * np.sqrt(in_t.size) * 4, out)
        self.cur = self.emit(
            "fully_connected",
            [flat],
            out,
            self.act(out),
            {
                "weight": self.weights((o, in_t.size)),
                "bias": self.bias(o, in_t.size),
                "multiplier": m,
                "shift": s,
            },
        )
        self.multi_term(self.ops[-1], o, 20.0 * np.sqrt(in_t.size) * 4)

    def conv_form(self):
        """conv2d with groups and / or dilation, or depthwise_conv2d with a channel multiplier
        and / or dilation; asymmetric pads (the optional attrs, sometimes at their defaults)."""
        rng = self.rng
        h, w, c = self.tensors[self.cur].shape
        depthwise = rng.random() < 0.4
        kh, kw = int(rng.choice([1, 2, 3])), int(rng.choice([1, 3]))
        dil = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
        span = (dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1)
        stride = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
        pads = [int(rng.integers(0, span[i % 2])) for i in range(4)]
        ho = (h + pads[0] + pads[2] - span[0]) // stride[0] + 1
        wo = (w + pads[1] + pads[3] - span[1]) // stride[1] + 1
        if ho < 1 or wo < 1:
            return
        attrs = {"stride": stride, "pads": pads}
        if dil != [1, 1] or rng.random() < 0.2:
            attrs["dilation"] = dil
        if depthwise:
            o = c * int(rng.integers(1, 4))
            shape, k, kind = (o, kh, kw), kh * kw, "depthwise_conv2d"
        else:  # a group count above 1 when C has a divisor above 1
            g = int(rng.choice([d for d in range(2, c + 1) if c % d == 0] or [1]))
            o = g * int(rng.integers(1, 4))
            shape, k, kind = (o, kh, kw, c // g), kh * kw * (c // g), "conv2d"
            if g != 1 or rng.random() < 0.2:
                attrs["groups"] = g
        out = self.tensor((ho, wo, o))
        m, s = self.requant(o, 20.0 * np.sqrt(k) * 4, out)
        self.cur = self.emit(
            kind,
            [self.cur],
            out,
            {**attrs, **self.act(out)},
            {"weight": self.weights(shape), "bias": self.bias(o, k), "multiplier": m, "shift": s},
        )
        self.multi_term(self.ops[-1], o, 20.0 * np.sqrt(k) * 4)

    def pool_form(self):
        """maxpool with a ceil_mode overhang in the bottom / right pads, or avgpool with
        count_pads (a divisor per window: one (multiplier, shift) per count)."""
        rng = self.rng
        h, w, c = self.tensors[self.cur].shape
        k = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
        stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
        pads = [int(rng.integers(0, k[0])), int(rng.integers(0, k[1])), int(rng.integers(0, k[0])), 0]
        pads[3] = int(rng.integers(0, k[1]))
        out_hw = []
        for i, n in enumerate((h, w)):
            o = (n + pads[i] + pads[i + 2] - k[i]) // stride[i] + 1
            if o < 1:
                return
            if rng.random() < 0.7 and o * stride[i] - pads[i] < n:  # ceil_mode: one more window
                o += 1
            pads[i + 2] = max(pads[i + 2], (o - 1) * stride[i] + k[i] - n - pads[i])
            out_hw.append(o)
        attrs = {"kernel": k, "stride": stride, "pads": pads}
        if rng.random() < 0.4:
            out = self.like(self.cur, (*out_hw, c))
            self.cur = self.emit("maxpool", [self.cur], out, attrs)
            return
        counted = [int(rng.integers(0, p + 1)) for p in pads]
        out = self.tensor((*out_hw, c))
        n = k[0] * k[1]
        m, s = self.requant(n, 8.0 * n, out)
        s = np.clip(s - np.round(np.log2(n / np.arange(1, n + 1))).astype(np.int32), 1, 62).astype(np.int32)
        self.cur = self.emit(
            "avgpool",
            [self.cur],
            out,
            {**attrs, "count_pads": counted, **self.act(out)},
            {"multiplier": m, "shift": s},
        )

    def conv_transpose(self):
        """A transposed convolution: stride 1-3, kernel 1-4, pads below the kernel, output
        padding below the stride."""
        rng = self.rng
        h, w, c = self.tensors[self.cur].shape
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
        pads = [
            int(rng.integers(0, kh)),
            int(rng.integers(0, kw)),
            int(rng.integers(0, kh)),
            int(rng.integers(0, kw)),
        ]
        out_pad = [int(rng.integers(0, stride[0])), int(rng.integers(0, stride[1]))]
        ho = (h - 1) * stride[0] - pads[0] - pads[2] + kh + out_pad[0]
        wo = (w - 1) * stride[1] - pads[1] - pads[3] + kw + out_pad[1]
        if ho < 1 or wo < 1 or ho * wo > 400:
            return
        o = int(rng.integers(1, 9))
        k = kh * kw * c
        out = self.tensor((ho, wo, o))
        m, s = self.requant(o, 20.0 * np.sqrt(k) * 4, out)
        self.cur = self.emit(
            "conv_transpose",
            [self.cur],
            out,
            {"stride": stride, "pads": pads, "output_padding": out_pad, **self.act(out)},
            {"weight": self.weights((o, kh, kw, c)), "bias": self.bias(o, k), "multiplier": m, "shift": s},
        )
        self.multi_term(self.ops[-1], o, 20.0 * np.sqrt(k) * 4)

    def resize(self, mode=None):
        """Nearest (0) or bilinear (1) up-sampling by 1-4 per axis; keeps the quantization."""
        rng = self.rng
        h, w, c = self.tensors[self.cur].shape
        scale = [int(rng.integers(1, 5)), int(rng.integers(1, 5))]
        if h * w * scale[0] * scale[1] > 400:
            scale = [1, 2]
        mode = int(rng.integers(2)) if mode is None else mode
        out = self.like(self.cur, (h * scale[0], w * scale[1], c))
        self.cur = self.emit("resize", [self.cur], out, {"mode": mode, "scale": scale})

    def gather(self):
        """Slices of the current tensor along a random stored axis, by a random index table
        (any order, repeats): channel shuffle, Slice, Split, Gather."""
        rng = self.rng
        shape = self.tensors[self.cur].shape
        axis = int(rng.integers(len(shape)))
        index = rng.integers(0, shape[axis], size=int(rng.integers(1, shape[axis] + 3))).astype(np.int32)
        out_shape = (*shape[:axis], index.size, *shape[axis + 1 :])
        self.cur = self.emit(
            "gather", [self.cur], self.like(self.cur, out_shape), {"axis": axis}, {"index": index}
        )

    def reduce_mean(self):
        """The mean over a random run of adjacent stored axes."""
        rng = self.rng
        shape = self.tensors[self.cur].shape
        first = int(rng.integers(len(shape)))
        last = int(rng.integers(first, len(shape)))
        n = int(np.prod(shape[first : last + 1]))
        out = self.tensor(tuple(1 if first <= i <= last else d for i, d in enumerate(shape)))
        m, s = self.requant(1, 8.0 * n, out)
        self.cur = self.emit(
            "reduce_mean",
            [self.cur],
            out,
            {"axes": [first, last], **self.act(out)},
            {"multiplier": m, "shift": s},
        )

    def concat_any_axis(self):
        """The current tensor and 1-2 slices of it (gathers, own sizes on the axis) joined on a
        random stored axis (H, W or C), each input requantized to the output."""
        rng = self.rng
        a = self.cur
        shape = self.tensors[a].shape
        axis = int(rng.integers(len(shape)))
        ins = [a]
        for _ in range(int(rng.integers(1, 3))):
            index = rng.integers(0, shape[axis], size=int(rng.integers(1, 4))).astype(np.int32)
            part = self.like(a, (*shape[:axis], index.size, *shape[axis + 1 :]))
            ins.append(self.emit("gather", [a], part, {"axis": axis}, {"index": index}))
        out_shape = list(shape)
        out_shape[axis] = sum(self.tensors[t].shape[axis] for t in ins)
        out = self.tensor(tuple(out_shape))
        m, s = self.requant(len(ins), 128.0, out)
        self.cur = self.emit("concat", ins, out, self.act(out), {"multiplier": m, "shift": s})

    def softmax(self):
        """Softmax along a random stored axis, with the table the quantizer builds for a random
        input scale and a random (calibrated-like) output scale."""
        rng = self.rng
        in_t = self.tensors[self.cur]
        axis = int(rng.integers(len(in_t.shape)))
        out = self.tensor(in_t.shape)
        d = np.arange(1 << in_t.bits, dtype=np.float64)
        table = np.floor(np.exp(-d * in_t.scale * rng.uniform(0.5, 20)) * (1 << 15) + 0.5).astype(np.int32)
        steps = int(rng.choice([1, 15, 255, 1000, (1 << 16) - 1]))
        self.cur = self.emit("softmax", [self.cur], out, {"axis": axis, "steps": steps}, {"table": table})

    def model(self, name="rand", layout="NHWC") -> QModel:
        return QModel(name, self.input, self.cur, self.tensors, self.ops, {"input_layout": layout})


SPATIAL_OPS = ("conv2d", "depthwise_conv2d", "avgpool", "maxpool", "add", "clamp", "pad")


def random_model(
    rng: np.random.Generator,
    n_ops: int = 6,
    kinds=SPATIAL_OPS,
    extreme=False,
    name="rand",
    layout="NHWC",
    head=True,
) -> QModel:
    """A random chain (with residual adds) of ``n_ops`` spatial ops, then optionally a head:
    global_avgpool or a direct flatten, and fully_connected."""
    shape = (int(rng.integers(1, 10)), int(rng.integers(1, 10)), int(rng.integers(1, 6)))
    b = _Builder(rng, shape, bits=8 if rng.random() < 0.5 else 4, extreme=extreme)
    for _ in range(n_ops):
        kind = kinds[int(rng.integers(len(kinds)))]
        {
            "conv2d": lambda: b.conv(False),
            "depthwise_conv2d": lambda: b.conv(True),
            "avgpool": lambda: b.pool("avgpool"),
            "maxpool": lambda: b.pool("maxpool"),
            "add": b.add,
            "clamp": b.clamp,
            "pad": b.pad,
            "lut": b.lut,
            "concat": b.concat,
            "mul": b.mul,
            "addsub": b.addsub,
            "lut_channel": b.lut_channel,
            "conv_form": b.conv_form,
            "pool_form": b.pool_form,
            "conv_transpose": b.conv_transpose,
            "resize": b.resize,
            "gather": b.gather,
            "reduce_mean": b.reduce_mean,
            "concat_any_axis": b.concat_any_axis,
            "softmax": b.softmax,
        }[kind]()
    if head:
        if rng.random() < 0.5:
            b.global_avgpool()
        b.flatten_fc()
    return b.model(name, layout)


def random_input(model: QModel, rng: np.random.Generator, n: int) -> np.ndarray:
    t = model.input_tensor
    return rng.integers(t.qmin, t.qmax + 1, size=(n, *t.shape)).astype(np.int8)


def build_c(model: QModel, tmp_path: Path, name="net") -> CModel:
    gen = tmp_path / f"gen_{name}"
    generate(model, gen, name)
    return CModel(gen, build_dir=tmp_path / "build")


def assert_c_equals_oracle(cm: CModel, model: QModel, xq: np.ndarray) -> None:
    c_out, c_dumps = cm.run_with_dumps(xq)
    ref_out, ref_caps = run_oracle(model, xq, capture=True)
    for tensor, ref in ref_caps.items():  # per layer first: names the culprit on failure
        np.testing.assert_array_equal(c_dumps[tensor], ref.reshape(len(xq), -1), err_msg=tensor)
    np.testing.assert_array_equal(c_out, ref_out)


# --------------------------------------------------------------------------- tests


def sanitized_outputs(model: QModel, xq: np.ndarray, tmp_path: Path, **generate_args) -> np.ndarray:
    """Outputs of an ASan + UBSan build of the generated ``model`` (a tiny C main) on ``xq``;
    fails the test on any sanitizer report."""
    gen = tmp_path / "san"
    generate(model, gen, "san", **generate_args)
    (tmp_path / "input.bin").write_bytes(xq.tobytes())
    main = gen / "main_test.c"
    main.write_text("""
#include <stdio.h>
#include "san.h"
int main(int argc, char **argv)
{
    int8_t x[SAN_INPUT_SIZE], y[SAN_OUTPUT_SIZE];
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    (void)argc;
    while (fread(x, 1, sizeof x, in) == sizeof x) {
        san_run(x, y);
        fwrite(y, 1, sizeof y, out);
    }
    fclose(in);
    fclose(out);
    return 0;
}
""")
    exe = tmp_path / "san_exe"
    sources = [
        str(gen / "san.c"),
        str(gen / "san_weights.c"),
        str(main),
        *map(str, sorted((gen / "q4_runtime").glob("*.c"))),
    ]
    subprocess.run(
        [
            "gcc",
            *WARN_FLAGS,
            "-g",
            "-O1",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-I",
            str(gen),
            *sources,
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    res = subprocess.run(
        [str(exe), str(tmp_path / "input.bin"), str(tmp_path / "out.bin")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    out = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8).reshape(len(xq), -1)
    return out
