"""Quantized model: the integer program that the oracle runs, `.q4` stores and the C implements.

Everything here is decided by the quantizer; the code generator and the oracle only read it.
The exact integer semantics of every op are written down in ``docs/integer-spec.md``.

Tensors (``QTensor``) are stored channels-last: ``shape`` is ``(H, W, C)`` for feature maps and
``(F,)`` for vectors, per sample. Every activation is held in an ``int8`` element whose value lies in
``[qmin, qmax]`` = ``[-2^(bits-1), 2^(bits-1)-1]``; ``real = scale * (q - zero_point)``. "Signed"
activations have ``zero_point == 0``; "unsigned with offset" activations have a non-zero zero point
(e.g. -8 for a 4-bit tensor after a ReLU, so all 16 codes are non-negative reals).

Ops (``QOp.kind``): the op table ``q4sdk.ir.ops.OPS`` lists every kind with its inputs, attrs
(ints / int lists) and arrays; ``docs/integer-spec.md`` section 4 says what each computes. Weights
are int8 arrays holding INT4 values in [-8, 7], ``[O, kh, kw, I]`` for conv2d, ``[C, kh, kw]`` for
depthwise_conv2d and ``[O, I]`` for fully_connected; bias, multiplier and shift are int32 per output
channel.

``act_min``/``act_max`` are the final clamp in the *output's* integer domain; they fold the fused
activation (ReLU, Relu6/Clip) together with the output's storage range.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class QTensor:
    name: str
    shape: tuple[int, ...]
    bits: int
    scale: float
    zero_point: int

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def signed(self) -> bool:
        return self.zero_point == 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class QOp:
    name: str
    kind: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class QModel:
    name: str
    input: str
    output: str
    tensors: dict[str, QTensor]
    ops: list[QOp]
    meta: dict = field(default_factory=dict)
    # meta keys used so far: "recipe" (dict), "source_hash" (str), "input_layout" ("NCHW"/"NHWC"),
    # "input_shape_float" (logical float input shape), "output_softmax" (bool),
    # "weight_bits" (4), "activation_bits" (4 or 8)

    @property
    def input_tensor(self) -> QTensor:
        return self.tensors[self.input]

    @property
    def output_tensor(self) -> QTensor:
        return self.tensors[self.output]
