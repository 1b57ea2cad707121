"""A flatten of a multi-channel feature map keeps the float model's C-order in the integer model.

The integer reshape keeps the channels-last bytes ((H, W, C) order); a dense layer after it
permutes its columns instead, but when the flatten is the model output (a segmentation mask, an
embedding map) or an element-wise op reads it, lowering adds a ``gather`` into the C-order."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.zoo.e2e import run_end_to_end


class _FlatHead(nn.Module):
    """conv -> Flatten [-> x + x / dense], with the flatten read by ``mode``."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.other = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 5 * 6, 7)

    def forward(self, x):
        f = torch.flatten(torch.relu(self.conv(x)), 1)
        if self.mode == "output":
            return f
        if self.mode == "add":
            return f + torch.flatten(self.other(x), 1)
        return self.fc(f)


def _run(mode, bits, tmp_path):
    torch.manual_seed(0)
    model = _FlatHead(mode).eval()
    g = torch.Generator().manual_seed(1)
    calib = torch.randn((32, 3, 5, 6), generator=g).numpy()
    test = torch.randn((4, 3, 5, 6), generator=g).numpy()
    return run_end_to_end(model, calib, test, tmp_path, bits=bits, name="flat")


def test_flatten_as_model_output_is_in_c_order(tmp_path):
    r = _run("output", 8, tmp_path)
    kinds = [op.kind for op in r.model.ops]
    assert kinds[-2:] == ["reshape", "gather"], kinds
    # C-order: the integer output follows the float output element by element
    assert r.sqnr_db > 12.0, r.sqnr_db  # (H, W, C) order against C-order: about 0 dB
    assert np.corrcoef(r.float_out.ravel(), r.int_out.ravel())[0, 1] > 0.99


def test_flatten_read_by_an_add_is_in_c_order(tmp_path):
    r = _run("add", 4, tmp_path)
    assert "gather" in [op.kind for op in r.model.ops]
    assert r.sqnr_db > 10.0, r.sqnr_db


def test_flatten_read_by_a_dense_layer_needs_no_gather(tmp_path):
    r = _run("dense", 8, tmp_path)
    assert "gather" not in [op.kind for op in r.model.ops]
    assert r.sqnr_db > 12.0, r.sqnr_db  # a column order mismatch would leave about 0 dB
