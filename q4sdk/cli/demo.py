"""``q4sdk demo``: the whole pipeline on real data in under a minute, with no download.

Trains a small CNN on scikit-learn's bundled handwritten digits (8x8 grey images, 1797 samples),
quantizes it to INT4 through the PyTorch path, generates C, builds it on the host with cffi, proves
it bit-exact against the integer oracle on the test split, and prints FP32 vs INT4 accuracy, flash
and arena bytes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from q4sdk.cli.common import cannot_write, check_output_dir
from q4sdk.progress import Progress


def digits_net(c: int = 16):
    """conv-bn-relu x2 with a residual block, global average pool, linear: about 5k parameters.

    Built in a function so that the CLI imports torch only when the demo runs."""
    import torch
    from torch import nn

    class DigitsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
            self.block = nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(),
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
            )
            self.down = nn.Sequential(
                nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU()
            )
            self.head = nn.Linear(2 * c, 10)

        def forward(self, x):
            x = self.stem(x)
            x = torch.relu(x + self.block(x))
            x = self.down(x)
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return DigitsNet()


def digits_split(seed: int = 0):
    """scikit-learn digits as float32 NCHW [N, 1, 8, 8] in 0..16; 1/4 held out for test."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(x))
    n_test = len(x) // 4
    te, tr = idx[:n_test], idx[n_test:]
    return x[tr], y[tr], x[te], y[te]


def train_digits(x, y, epochs: int = 30, seed: int = 0, progress: Progress | None = None):
    """``digits_net`` trained with Adam on ``x``, ``y`` (deterministic for a seed)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = digits_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    rng = np.random.default_rng(seed)
    for ep in range(epochs):
        net.train()
        for b in np.array_split(rng.permutation(len(x)), max(1, len(x) // 64)):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[b]), yt[b])
            loss.backward()
            opt.step()
        if progress:
            progress.update(ep, epochs, f"loss {loss.item():.3f}")
    net.eval()
    return net


def run_demo(args) -> int:
    import torch

    from q4sdk.api import load_float_model
    from q4sdk.check.verify import verify
    from q4sdk.codegen.render import generate
    from q4sdk.ir import oracle
    from q4sdk.ir.float_exec import run_float
    from q4sdk.ir.q4file import load_q4, save_q4
    from q4sdk.ptq.pipeline import quantize_graph
    from q4sdk.ptq.recipe import Recipe
    from q4sdk.targets.host_build import CModel

    t0 = time.time()
    if args.output:
        out = check_output_dir(args.output, ("digits.q4", "c"), args.force)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise cannot_write(out, e) from None
    else:
        out = Path(tempfile.mkdtemp(prefix="q4sdk-demo-"))
    bits = int(args.activations.removeprefix("int"))
    print(f"q4sdk demo: digits CNN -> INT4 weights / INT{bits} activations -> C   (files in {out})")

    xtr, ytr, xte, yte = digits_split()
    net = train_digits(xtr, ytr, progress=Progress("train"))
    graph = load_float_model(net, example_input=torch.as_tensor(xtr[:1]))
    graph.name = "digits"
    float_acc = float((run_float(graph, xte).argmax(1) == yte).mean())

    recipe = Recipe(activation_bits=bits, unsigned_activations=True, bias_correction=True)
    model = quantize_graph(graph, xtr[:512], recipe, Progress("quantize"))
    q4_path = out / "digits.q4"
    save_q4(model, q4_path, overwrite=args.force)
    model = load_q4(q4_path)  # everything below runs from the file, as a user would

    gen_dir = out / "c"
    try:
        report = generate(model, gen_dir, "digits", overwrite=args.force)
    except OSError as e:
        raise cannot_write(gen_dir, e) from None
    cmodel = CModel(gen_dir)
    xq = oracle.quantize_input(model, xte)
    result = verify(model, cmodel, xq)
    c_out = cmodel.run(xq)
    int_acc = float((c_out.reshape(len(xq), -1).argmax(1) == yte).mean())

    print()
    print(f"  test images           {len(xte)}")
    print(f"  FP32 accuracy         {100 * float_acc:6.2f} %")
    print(f"  INT4 accuracy (C)     {100 * int_acc:6.2f} %   (W4A{bits}, all layers and the input quantized)")
    print(
        f"  C vs oracle           {'bit-exact' if result.mismatches == 0 else 'MISMATCH'} "
        f"({result.samples} samples, {result.mismatches} mismatches)"
    )
    print(f"  weights in flash      {report.weight_bytes} bytes")
    print(f"  arena (RAM)           {report.arena_bytes} bytes")
    print(f"  generated C           {gen_dir}")
    print(f"  total time            {time.time() - t0:.1f} s")
    if result.mismatches:
        print(f"  first mismatch        {result.first_mismatch}")
        return 1
    return 0


def register(sub) -> None:
    """Add ``demo`` to the ``q4sdk`` subparsers ``sub``."""
    p = sub.add_parser(
        "demo",
        help="train a small CNN on scikit-learn's digits, quantize to INT4, generate C, "
        "prove it bit-exact, print the numbers",
    )
    p.add_argument(
        "-o", "--output", help="directory for the demo's files (default: a new temporary directory)"
    )
    p.add_argument("--activations", default="int8", choices=["int4", "int8"])
    p.add_argument("--force", action="store_true", help="replace the demo's files in --output if they exist")
    p.set_defaults(func=run_demo)
