"""PyTorch frontend: exported-and-imported graphs compute what the module computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from q4sdk.errors import Q4Error
from q4sdk.frontend import from_torch
from q4sdk.ir.float_exec import run_float


class SmallCNN(nn.Module):
    """Conv+BN+ReLU, zero pad + depthwise conv + ReLU6, residual add, MaxPool, GAP, view, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.pad = nn.ZeroPad2d(1)
        self.dw = nn.Conv2d(8, 8, 3, groups=8)
        self.bn_dw = nn.BatchNorm2d(8)
        self.act6 = nn.ReLU6()
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = self.pool(x + self.act6(self.bn_dw(self.dw(self.pad(x)))))
        return self.fc(self.gap(x).view(x.size(0), -1))


def randomize_batchnorm(module: nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics so that folding it is actually exercised."""
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def test_small_cnn_matches_module():
    torch.manual_seed(0)
    model = SmallCNN()
    randomize_batchnorm(model)
    model.train()
    x = torch.randn(6, 3, 8, 8)
    graph = from_torch(model, x[:2], name="cnn")
    assert model.training, "from_torch must restore the training flag"
    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(run_float(graph, x.numpy()), expected, rtol=1e-4, atol=1e-5)
    assert [n.op for n in graph.nodes] == [
        "conv2d",
        "relu",
        "conv2d",
        "clamp",
        "add",
        "maxpool",
        "global_avgpool",
        "reshape",
        "fully_connected",
    ]
    dw = graph.nodes[2]
    assert dw.attrs["groups"] == 8 and dw.attrs["pads"] == (1, 1, 1, 1)  # ZeroPad2d folded
    assert graph.name == "cnn" and graph.input_shape == (3, 8, 8) and len(graph.source_hash) == 64


def test_mlp_from_numpy_example_matches_module():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 4),
        nn.Softmax(dim=1),
    )
    randomize_batchnorm(model)
    model.eval()
    x = np.random.default_rng(0).standard_normal((5, 12)).astype(np.float32)
    graph = from_torch(model, x)
    assert graph.output_softmax
    logits = run_float(graph, x)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-6)
    assert [n.op for n in graph.nodes] == ["fully_connected", "relu", "fully_connected"]


def test_export_failure_and_unsupported_op_raise_q4error():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(Q4Error, match="export failed"):
        from_torch(Broken(), torch.zeros(1, 4))
    with pytest.raises(Q4Error, match="unsupported op type 'Softplus'"):
        from_torch(nn.Sequential(nn.Linear(4, 4), nn.Softplus()), torch.zeros(1, 4))
    with pytest.raises(Q4Error, match="example input"):
        from_torch(nn.Linear(4, 4), torch.zeros(4))
