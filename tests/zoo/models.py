"""A zoo of the architectures people deploy on microcontrollers, written here in compact PyTorch
(no torchvision), at small input sizes so CI stays fast. Weights are random; BatchNorm statistics
are re-estimated on random inputs so activations have sane ranges.

``ZOO[name]()`` builds a model in eval mode; ``INPUTS[name]`` is its per-sample input shape.
"""

from __future__ import annotations

import io

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F


def _div8(v: float) -> int:
    """Channels rounded to a multiple of 8, never below 90 % of ``v`` (the MobileNet rule)."""
    n = max(8, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, c, squeeze, gate=nn.Sigmoid, act=nn.ReLU):
        super().__init__()
        self.fc1, self.act, self.fc2, self.gate = (
            nn.Conv2d(c, squeeze, 1),
            act(),
            nn.Conv2d(squeeze, c, 1),
            gate(),
        )

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


class InvertedResidual(nn.Module):
    """MobileNetV2 / MnasNet / EfficientNet / MobileNetV3 block: expand, depthwise, (SE), project."""

    def __init__(self, cin, cout, k, stride, expand, act=nn.ReLU6, se: int | None = None, se_gate=nn.Sigmoid):
        super().__init__()
        mid = cin * expand if isinstance(expand, int) else expand[0]
        self.use_res = stride == 1 and cin == cout
        layers = [conv_bn(cin, mid, 1, act=act)] if mid != cin else []
        layers.append(conv_bn(mid, mid, k, stride, groups=mid, act=act))
        if se:
            layers.append(SqueezeExcite(mid, se, gate=se_gate))
        layers.append(conv_bn(mid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x) if self.use_res else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, width=0.35, classes=10):
        super().__init__()
        cfg = [
            (1, 16, 1, 1),
            (6, 24, 2, 2),
            (6, 32, 3, 2),
            (6, 64, 4, 2),
            (6, 96, 3, 1),
            (6, 160, 3, 2),
            (6, 320, 1, 1),
        ]
        c = _div8(32 * width)
        layers = [conv_bn(3, c, 3, 1, act=nn.ReLU6)]  # stride 1 at 32 px (CIFAR-style)
        for t, ch, n, s in cfg:
            out = _div8(ch * width)
            for i in range(n):
                layers.append(InvertedResidual(c, out, 3, s if i == 0 else 1, t))
                c = out
        layers.append(conv_bn(c, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class MobileNetV3Small(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        hs, re = nn.Hardswish, nn.ReLU
        # (kernel, expanded, out, SE, activation, stride)
        cfg = [
            (3, 16, 16, True, re, 2),
            (3, 72, 24, False, re, 2),
            (3, 88, 24, False, re, 1),
            (5, 96, 40, True, hs, 2),
            (5, 240, 40, True, hs, 1),
            (5, 240, 40, True, hs, 1),
            (5, 120, 48, True, hs, 1),
            (5, 144, 48, True, hs, 1),
            (5, 288, 96, True, hs, 2),
            (5, 576, 96, True, hs, 1),
            (5, 576, 96, True, hs, 1),
        ]
        layers, c = [conv_bn(3, 16, 3, 2, act=hs)], 16
        for k, mid, out, se, act, s in cfg:
            layers.append(
                InvertedResidual(
                    c, out, k, s, (mid,), act=act, se=_div8(mid / 4) if se else None, se_gate=nn.Hardsigmoid
                )
            )
            c = out
        layers.append(conv_bn(c, 576, 1, act=hs))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(), nn.Linear(1024, classes))

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand, concat=True):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())
        self.concat = concat

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1) if self.concat else self.e1(s) + self.e3(s)


class SqueezeNet11(nn.Module):
    """SqueezeNet 1.1; ``concat=False`` is the variant whose Fire modules add their two expand
    branches (and whose pools floor) -- the ops q4sdk supports today."""

    def __init__(self, classes=10, concat=True):
        super().__init__()
        m = 2 if concat else 1
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=concat)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2),
            nn.ReLU(),
            pool(),
            Fire(64, 16, 64, concat),
            Fire(64 * m, 16, 64, concat),
            pool(),
            Fire(64 * m, 32, 128, concat),
            Fire(128 * m, 32, 128, concat),
            pool(),
            Fire(128 * m, 48, 192, concat),
            Fire(192 * m, 48, 192, concat),
            Fire(192 * m, 64, 256, concat),
            Fire(256 * m, 64, 256, concat),
        )
        self.classifier = nn.Sequential(nn.Dropout(), nn.Conv2d(256 * m, classes, 1), nn.ReLU())

    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.classifier(self.features(x)), 1), 1)


def channel_shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                conv_bn(cin, cin, 3, stride, groups=cin, act=None), conv_bn(cin, half, 1)
            )
        b_in = cin if stride > 1 else half
        self.branch2 = nn.Sequential(
            conv_bn(b_in, half, 1),
            conv_bn(half, half, 3, stride, groups=half, act=None),
            conv_bn(half, half, 1),
        )

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.branch2(b)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 x0.5 (stages 48, 96, 192; repeats 4, 8, 4)."""

    def __init__(self, classes=10):
        super().__init__()
        layers, c = [conv_bn(3, 24, 3, 1)], 24
        for out, n in ((48, 4), (96, 8), (192, 4)):
            for i in range(n):
                layers.append(ShuffleUnit(c, out, 2 if i == 0 else 1))
                c = out
        layers.append(conv_bn(c, 1024, 1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class EfficientNetB0(nn.Module):
    """EfficientNet-B0 style: MBConv with SiLU and squeeze-excite (width 0.5, one block per stage
    after the first repeats, to keep CI fast)."""

    def __init__(self, classes=10):
        super().__init__()
        cfg = [
            (1, 16, 1, 1, 3),
            (6, 24, 2, 2, 3),
            (6, 40, 2, 2, 5),
            (6, 80, 2, 2, 3),
            (6, 112, 1, 1, 5),
            (6, 192, 2, 2, 5),
            (6, 320, 1, 1, 3),
        ]
        c = 16
        layers = [conv_bn(3, c, 3, 1, act=nn.SiLU)]
        for t, ch, n, s, k in cfg:
            out = _div8(ch * 0.5)
            for i in range(n):
                layers.append(
                    InvertedResidual(c, out, k, s if i == 0 else 1, t, act=nn.SiLU, se=max(1, c // 4))
                )
                c = out
        layers.append(conv_bn(c, 640, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(640, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class MnasNet(nn.Module):
    """MnasNet-B1 (depth 0.5): separable stem, inverted residuals with ReLU, 3x3 and 5x5 kernels."""

    def __init__(self, classes=10):
        super().__init__()
        d = [_div8(v * 0.5) for v in (32, 16, 24, 40, 80, 96, 192, 320)]
        layers = [
            conv_bn(3, d[0], 3, 1),
            conv_bn(d[0], d[0], 3, 1, groups=d[0]),
            conv_bn(d[0], d[1], 1, act=None),
        ]
        c = d[1]
        for out, k, s, t, n in (
            (d[2], 3, 2, 3, 3),
            (d[3], 5, 2, 3, 3),
            (d[4], 5, 2, 6, 3),
            (d[5], 3, 1, 6, 2),
            (d[6], 5, 2, 6, 4),
            (d[7], 3, 1, 6, 1),
        ):
            for i in range(n):
                layers.append(InvertedResidual(c, out, k, s if i == 0 else 1, t, act=nn.ReLU))
                c = out
        layers.append(conv_bn(c, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class KWS1D(nn.Module):
    """A 1-D-conv keyword spotter on 40 MFCC x 49 frames ([N, 40, 49]), TC-ResNet style."""

    def __init__(self, classes=12):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(40, 64, 3, padding=1, bias=False),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Conv1d(64, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(64, 96, 3, padding=1, bias=False),
            nn.BatchNorm1d(96),
            nn.ReLU(),
        )
        self.fc = nn.Linear(96, classes)

    def forward(self, x):
        return self.fc(self.body(x).mean(2))


class DSCNN(nn.Module):
    """DS-CNN (Hello Edge, small) with ReLU6 on [N, 1, 49, 10] MFCC."""

    def __init__(self, classes=12, c=64):
        super().__init__()
        layers = [nn.Conv2d(1, c, (10, 4), (2, 2), (5, 1), bias=False), nn.BatchNorm2d(c), nn.ReLU6()]
        for _ in range(4):
            layers += [conv_bn(c, c, 3, groups=c, act=nn.ReLU6), conv_bn(c, c, 1, act=nn.ReLU6)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class TinyUNet(nn.Module):
    """Two-level U-Net: ConvTranspose up-sampling on one level, nearest Resize on the other, and
    Concat skips; a 1-channel mask out."""

    def __init__(self, c=8):
        super().__init__()
        self.e1, self.e2 = conv_bn(3, c), conv_bn(c, 2 * c, 3, 2)
        self.mid = conv_bn(2 * c, 4 * c, 3, 2)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2)
        self.d2 = conv_bn(4 * c, 2 * c)
        self.d1 = conv_bn(3 * c, c)
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(e1)
        d2 = self.d2(torch.cat([self.up2(self.mid(e2)), e2], 1))
        d1 = self.d1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], 1))
        return self.out(d1).flatten(1)


class MLPAutoencoder(nn.Module):
    """Dense autoencoder (anomaly detection, the MLPerf Tiny ToyADMOS shape scaled down)."""

    def __init__(self, dim=128, hidden=64, code=8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, code),
            nn.ReLU(),
            nn.Linear(code, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x):
        return self.net(x)


# ---- one small model per element-wise op (mul, addsub, lut_channel, the fused SiLU / GELU tables)


class OpMulSE(nn.Module):
    """Squeeze-excite with a Sigmoid gate: Mul of [N, C, H, W] by [N, C, 1, 1], and a Mul of two
    equal-shape activations."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem, self.se = conv_bn(3, 16, 3, 2), SqueezeExcite(16, 4)
        self.a, self.b = conv_bn(16, 16, 1), conv_bn(16, 16, 3)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        h = self.se(self.stem(x))
        return self.fc((self.a(h) * self.b(h)).mean((2, 3)))


class OpSiLU(nn.Module):
    """SiLU (exported as Sigmoid then Mul) on feature maps and on a vector."""

    def __init__(self, classes=10):
        super().__init__()
        self.body = nn.Sequential(conv_bn(3, 12, 3, 2, act=nn.SiLU), conv_bn(12, 16, 3, act=nn.SiLU))
        self.head = nn.Sequential(nn.Linear(16, 24), nn.SiLU(), nn.Linear(24, classes))

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


class OpGELU(nn.Module):
    """GELU in its Erf form (Div, Erf, Add, Mul, Mul) on feature maps and on a vector."""

    def __init__(self, classes=10):
        super().__init__()
        self.body = nn.Sequential(conv_bn(3, 12, 3, 2, act=nn.GELU), conv_bn(12, 16, 3, act=nn.GELU))
        self.head = nn.Sequential(nn.Linear(16, 24), nn.GELU(), nn.Linear(24, classes))

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


class OpPReLU(nn.Module):
    """PReLU with one slope per channel (lut_channel) and with a single slope (lut)."""

    def __init__(self, classes=10):
        super().__init__()
        self.c1, self.p1 = conv_bn(3, 8, 3, 2, act=None), nn.PReLU(8)
        self.c2, self.p2 = conv_bn(8, 16, 3, act=None), nn.PReLU()
        self.fc, self.p3 = nn.Linear(16, 12), nn.PReLU(12)
        self.out = nn.Linear(12, classes)
        with torch.no_grad():
            self.p1.weight.copy_(torch.linspace(-0.3, 0.6, 8))
            self.p3.weight.copy_(torch.linspace(0.05, 0.5, 12))

    def forward(self, x):
        h = self.p2(self.c2(self.p1(self.c1(x))))
        return self.out(self.p3(self.fc(h.mean((2, 3)))))


class OpSubDivNorm(nn.Module):
    """Input normalisation ``(x - mean) / std`` folded into the first (unpadded) conv; Sub of two
    activations, of a per-channel mean (h - mean(h)) and reversed (mean(h) - h)."""

    def __init__(self, classes=10):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, -0.2, 0.1]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([1.5, 0.8, 1.2]).reshape(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, 12, 3, 2), nn.BatchNorm2d(12), nn.ReLU())
        self.a, self.b = conv_bn(12, 12, 1, act=None), conv_bn(12, 12, 3, act=None)
        self.ctx, self.fc = nn.Conv2d(12, 12, 1), nn.Linear(12, classes)

    def forward(self, x):
        h = self.stem((x - self.mean) / self.std)
        d = self.a(h) - self.b(h)
        centred = d - d.mean((2, 3), keepdim=True)
        return self.fc(torch.relu(self.ctx(d.mean((2, 3), keepdim=True)) - centred).mean((2, 3)))


class OpAddBroadcast(nn.Module):
    """Add of a per-channel [N, C, 1, 1] activation, constants that fold into the conv before
    (Add, Div) and ones that cannot (after a ReLU: a 1x1 depthwise conv; on a vector: diagonal)."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = conv_bn(3, 12, 3, 2)
        self.ctx = nn.Conv2d(12, 12, 1)
        self.conv = nn.Conv2d(12, 12, 3, padding=1)
        self.register_buffer("shift", torch.linspace(-0.5, 0.5, 12).reshape(1, 12, 1, 1))
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        h = self.stem(x)
        h = h + self.ctx(h.mean((2, 3), keepdim=True))
        h = (self.conv(h) + self.shift) / 2.0
        h = torch.relu(h) * 3.0 - 0.25
        return self.fc(h.mean((2, 3)) * 0.5 + 1.0)


# ---------------------------------------------------------------- one small model per conv / pool form


class OpGroupedConv(nn.Module):
    """Grouped 3x3 and 1x1 convolutions (ResNeXt / ShuffleNet-v1 style, 1 < groups < C)."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 1)
        self.g1 = conv_bn(16, 24, 3, 2, groups=4)
        self.g2 = nn.Sequential(nn.Conv2d(24, 24, 1, groups=3, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        return self.fc(self.g2(self.g1(self.stem(x))).mean((2, 3)))


class OpDepthwiseMult2(nn.Module):
    """Depthwise convolutions with channel multiplier 2 (groups = C_in, C_out = 2 C_in)."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 1)
        self.dw1 = conv_bn(8, 16, 3, 2, groups=8)
        self.dw2 = conv_bn(16, 32, 5, 1, groups=16)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.dw2(self.dw1(self.stem(x))).mean((2, 3)))


class OpDilatedConv(nn.Module):
    """Dilated 3x3 convolutions, dense and depthwise (DeepLab / WaveNet-style context)."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 1)
        self.d2 = nn.Sequential(
            nn.Conv2d(8, 12, 3, 1, 2, dilation=2, bias=False), nn.BatchNorm2d(12), nn.ReLU()
        )
        self.dw = nn.Sequential(
            nn.Conv2d(12, 12, 3, 1, (3, 1), dilation=(3, 1), groups=12, bias=False),
            nn.BatchNorm2d(12),
            nn.ReLU(),
        )
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        return self.fc(self.dw(self.d2(self.stem(x))).mean((2, 3)))


class OpAsymPad(nn.Module):
    """Unequal top / left / bottom / right padding (TF "SAME" with stride 2) on conv, depthwise,
    max- and average-pooling."""

    def __init__(self):
        super().__init__()
        self.conv = conv_bn(3, 8, 3, 1)
        self.c2 = nn.Conv2d(8, 8, 3, 2)
        self.dw = nn.Conv2d(8, 8, 3, 1, groups=8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.c2(F.pad(self.conv(x), (0, 1, 0, 1))))  # (left, right, top, bottom)
        x = F.relu(self.dw(F.pad(x, (1, 2, 2, 0))))
        x = F.max_pool2d(F.pad(x, (0, 1, 1, 0)), 2, 1)  # x >= 0: the zero pad folds into the pool
        x = F.avg_pool2d(F.pad(x, (1, 0, 0, 2)), 3, 2)
        return self.fc(x.mean((2, 3)))


class OpPoolCeil(nn.Module):
    """MaxPool and AvgPool with ceil_mode=1, with and without count_include_pad."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 1)
        self.c2 = conv_bn(8, 8, 3, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.max_pool2d(self.stem(x), 3, 2, ceil_mode=True)  # 16 -> 8 (floor: 7)
        x = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True)  # 8 -> 5 (floor: 4)
        x = F.avg_pool2d(self.c2(x), 3, 2, 1, ceil_mode=True, count_include_pad=False)  # 5 -> 3
        return self.fc(x.mean((2, 3)))


class OpConvTranspose(nn.Module):
    """Per-op model: ConvTranspose2d at stride 2 (kernels 3 with output padding, 4, 2) and stride 1,
    with BatchNorm and ReLU after, as decoders use them."""

    def __init__(self, c=8):
        super().__init__()
        self.down = conv_bn(3, c, 3, 2)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c, c, 3, 2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.ConvTranspose2d(c, c // 2, 4, 2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c // 2, c // 2, 2, 2),
            nn.ConvTranspose2d(c // 2, 1, 3, 1, padding=1),  # one channel: the flattened mask
        )

    def forward(self, x):
        return self.up(self.down(x)).flatten(1)


class OpResize(nn.Module):
    """Per-op model: up-sampling by F.interpolate(scale_factor=2) and nn.Upsample (factor 3 for
    nearest), with a Concat skip, in ``mode`` nearest or bilinear (align_corners=False)."""

    def __init__(self, mode="nearest", c=6):
        super().__init__()
        self.mode = mode
        self.e1, self.e2 = conv_bn(3, c), conv_bn(c, c, 3, 2)
        self.d = conv_bn(2 * c, c)
        self.up = nn.Upsample(scale_factor=3 if mode == "nearest" else 2, mode=mode)
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        e1 = self.e1(x)
        kw = {} if self.mode == "nearest" else {"align_corners": False}
        u = F.interpolate(self.e2(e1), scale_factor=2.0, mode=self.mode, **kw)
        return self.out(self.up(self.d(torch.cat([u, e1], 1)))).flatten(1)


# ---------------------------------------------------------------- one small model per op (shape)


class OpConv1d(nn.Module):
    """Conv1d (stride 2, pads), BatchNorm1d folded, depthwise Conv1d, AvgPool1d, mean over L."""

    def __init__(self, classes=5):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(8, 16, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Conv1d(16, 16, 3, padding=1, groups=16, bias=False),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.AvgPool1d(2),
            nn.Conv1d(16, 12, 1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        return self.fc(self.body(x).mean(2))


class OpPool1d(nn.Module):
    """MaxPool1d with stride and padding, AvgPool1d, AdaptiveAvgPool1d(1) + Flatten + Linear."""

    def __init__(self, classes=4):
        super().__init__()
        self.conv = nn.Conv1d(6, 10, 3, padding=1)
        self.pools = nn.Sequential(
            nn.MaxPool1d(3, stride=2, padding=1), nn.AvgPool1d(2), nn.AdaptiveAvgPool1d(1)
        )
        self.fc = nn.Linear(10, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pools(F.relu(self.conv(x))), 1))


class OpChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle (Reshape -> Transpose -> Reshape) with 4 groups between convs."""

    def __init__(self, classes=5):
        super().__init__()
        self.a, self.b = conv_bn(3, 16, 3), conv_bn(16, 16, 1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.b(channel_shuffle(self.a(x), 4)).mean((2, 3)))


class OpSliceSplit(nn.Module):
    """Split on channels (uneven), Slice on channels and on H / W (with a step), Concat of the parts."""

    def __init__(self, classes=5):
        super().__init__()
        self.a = conv_bn(3, 12, 3)
        self.b, self.c = conv_bn(4, 8, 3), conv_bn(8, 8, 1)
        self.fc = nn.Linear(24, classes)

    def forward(self, x):
        x = self.a(x)
        p, q = torch.split(x, [4, 8], dim=1)
        r = x[:, 2:10]
        s = torch.cat([self.b(p), self.c(q), r], 1)
        return self.fc(s[:, :, 1:-1, ::2].mean((2, 3)))


class OpGather(nn.Module):
    """Gather with constant indices on the channel axis (index_select, reordering and repeating)."""

    def __init__(self, classes=5):
        super().__init__()
        self.a, self.b = conv_bn(3, 8, 3), conv_bn(6, 8, 3)
        self.register_buffer("idx", torch.tensor([3, 0, 5, 1, 1, 7]))
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.b(torch.index_select(self.a(x), 1, self.idx)).mean((2, 3)))


class OpSqueeze(nn.Module):
    """Conv2d on [N, C, 1, L] -> Squeeze(2) -> Conv1d -> Unsqueeze(2) -> Conv2d: 2-D and 1-D ops mixed."""

    def __init__(self, classes=4):
        super().__init__()
        self.a = nn.Conv2d(4, 8, (1, 3), padding=(0, 1))
        self.b = nn.Conv1d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 6, (1, 3))
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        y = F.relu(self.b(F.relu(self.a(x)).squeeze(2)))
        return self.fc(F.relu(self.c(y.unsqueeze(2))).mean((2, 3)))


class OpConcatSpatial(nn.Module):
    """Concat on H and on W (two branches with their own scales), then on channels."""

    def __init__(self, classes=5):
        super().__init__()
        self.a, self.b = conv_bn(3, 6, 3), conv_bn(3, 6, 3, act=nn.ReLU6)
        self.c = conv_bn(6, 8, 3, stride=2)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        h = torch.cat([a, b], 2)  # [N, 6, 2H, W]
        w = torch.cat([b, a, b], 3)  # [N, 6, H, 3W]
        return self.fc(
            self.c(torch.cat([h[:, :, : x.shape[2]], w[:, :, :, : x.shape[3]]], 1)[:, :6]).mean((2, 3))
        )


class OpReduceMeanAxis(nn.Module):
    """ReduceMean over the channel axis (keepdim, as CBAM's spatial attention) and over W alone."""

    def __init__(self, classes=5):
        super().__init__()
        self.a = conv_bn(3, 8, 3)
        self.b = conv_bn(9, 8, 3)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        y = self.a(x)
        z = self.b(torch.cat([y, y.mean(1, keepdim=True)], 1))
        return self.fc(z.mean(3, keepdim=True).mean(2).flatten(1))


class OpSoftmaxAxis(nn.Module):
    """Softmax inside the network: over the channels (attention weights) and over W, then a final
    Softmax over the classes (removed: output_softmax)."""

    def __init__(self, classes=5):
        super().__init__()
        self.a, self.b = conv_bn(3, 8, 3), conv_bn(8, 8, 3)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        y = self.b(torch.softmax(self.a(x), dim=1))
        return torch.softmax(self.fc(torch.softmax(y, dim=3).mean((2, 3))), dim=1)


INPUTS: dict[str, tuple[int, ...]] = {
    "mobilenet_v2_035": (3, 32, 32),
    "mobilenet_v3_small": (3, 32, 32),
    "squeezenet_1_1": (3, 48, 48),
    "squeezenet_1_1_add": (3, 48, 48),
    "shufflenet_v2_x05": (3, 32, 32),
    "efficientnet_b0_style": (3, 32, 32),
    "mnasnet": (3, 32, 32),
    "kws_1d": (40, 49),
    "dscnn": (1, 49, 10),
    "tiny_unet": (3, 32, 32),
    "mlp_autoencoder": (128,),
    "op_mul_se": (3, 16, 16),
    "op_silu": (3, 16, 16),
    "op_gelu": (3, 16, 16),
    "op_prelu": (3, 16, 16),
    "op_sub_div_norm": (3, 16, 16),
    "op_add_broadcast": (3, 16, 16),
    "op_grouped_conv": (3, 16, 16),
    "op_depthwise_mult2": (3, 16, 16),
    "op_dilated_conv": (3, 16, 16),
    "op_asym_pad": (3, 15, 15),
    "op_pool_ceil": (3, 16, 16),
    "op_conv_transpose": (3, 12, 12),
    "op_resize_nearest": (3, 8, 8),
    "op_resize_bilinear": (3, 8, 8),
    "op_conv1d": (8, 32),
    "op_pool1d": (6, 40),
    "op_channel_shuffle": (3, 12, 12),
    "op_slice_split": (3, 12, 12),
    "op_gather": (3, 10, 10),
    "op_squeeze": (4, 1, 20),
    "op_concat_spatial": (3, 8, 8),
    "op_reduce_mean_axis": (3, 10, 10),
    "op_softmax_axis1": (3, 10, 10),
}
_CLASSES = {
    "mobilenet_v2_035": MobileNetV2,
    "mobilenet_v3_small": MobileNetV3Small,
    "squeezenet_1_1": SqueezeNet11,
    "squeezenet_1_1_add": lambda: SqueezeNet11(concat=False),
    "shufflenet_v2_x05": ShuffleNetV2,
    "efficientnet_b0_style": EfficientNetB0,
    "mnasnet": MnasNet,
    "kws_1d": KWS1D,
    "dscnn": DSCNN,
    "tiny_unet": TinyUNet,
    "mlp_autoencoder": MLPAutoencoder,
    "op_mul_se": OpMulSE,
    "op_silu": OpSiLU,
    "op_gelu": OpGELU,
    "op_prelu": OpPReLU,
    "op_sub_div_norm": OpSubDivNorm,
    "op_add_broadcast": OpAddBroadcast,
    "op_grouped_conv": OpGroupedConv,
    "op_depthwise_mult2": OpDepthwiseMult2,
    "op_dilated_conv": OpDilatedConv,
    "op_asym_pad": OpAsymPad,
    "op_pool_ceil": OpPoolCeil,
    "op_conv_transpose": OpConvTranspose,
    "op_resize_nearest": lambda: OpResize("nearest"),
    "op_resize_bilinear": lambda: OpResize("bilinear"),
    "op_conv1d": OpConv1d,
    "op_pool1d": OpPool1d,
    "op_channel_shuffle": OpChannelShuffle,
    "op_slice_split": OpSliceSplit,
    "op_gather": OpGather,
    "op_squeeze": OpSqueeze,
    "op_concat_spatial": OpConcatSpatial,
    "op_reduce_mean_axis": OpReduceMeanAxis,
    "op_softmax_axis1": OpSoftmaxAxis,
}


def random_inputs(name: str, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *INPUTS[name]), generator=g)


def build(name: str, seed: int = 0) -> nn.Module:
    """The model with random weights and BatchNorm statistics re-estimated on random inputs, in eval mode."""
    torch.manual_seed(seed)
    model = _CLASSES[name]()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the estimation batches
    model.train()
    with torch.no_grad():
        for b in range(2):
            model(random_inputs(name, 16, seed=1000 + b))
    return model.eval()


ZOO = tuple(_CLASSES)


def export_onnx(model: nn.Module, name: str) -> onnx.ModelProto:
    """As a user exports: TorchScript exporter, opset 17, dynamic batch."""
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (random_inputs(name, 1),),
        buf,
        opset_version=17,
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )
    return onnx.load_from_string(buf.getvalue())


def zoo_onnx(name: str) -> onnx.ModelProto:
    """Zoo model ``name`` built and exported."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(build(name), name)
