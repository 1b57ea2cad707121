"""Compare the generated C with the integer oracle, and name the first layer where they differ."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from q4sdk.codegen.arena import input_tensors
from q4sdk.errors import Q4Error
from q4sdk.ir.oracle import input_shape, run_oracle
from q4sdk.ir.qmodel import QModel
from q4sdk.targets.host_build import CModel


@dataclass(frozen=True)
class Mismatch:
    """The first differing value: in sample ``sample``, tensor ``tensor`` (written by op ``op``;
    None for the model input and its residual tensor), at flat channels-last index ``index``."""

    sample: int
    tensor: str
    op: str | None
    index: int
    c_value: int
    oracle_value: int


@dataclass(frozen=True)
class VerifyResult:
    """Bit-exactness is the contract for every tensor, not only the output: a wrong layer whose
    error a later clamp happens to hide still counts."""

    samples: int
    mismatches: int  # samples in which any tensor differs
    output_mismatches: int  # samples whose final output differs
    first_mismatch: Mismatch | None  # earliest differing tensor of the first differing sample

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


def verify(model: QModel, target, xq: np.ndarray, build_dir=None) -> VerifyResult:
    """Run ``xq`` (int8 [N, *oracle.input_shape(model)]: for a residual input, X1 and X2 of every
    sample) through the C (a generated directory or a CModel) and the oracle and compare every
    tensor (the C's debug dumps against the oracle's captures)."""
    cm = target if isinstance(target, CModel) else CModel(Path(target), build_dir)
    xq = np.asarray(xq)
    if cm.input_shape != input_shape(model):
        raise Q4Error(
            f"verify: C model '{cm.name}' takes input {cm.input_shape}, model "
            f"'{model.name}' {input_shape(model)}: not the same model"
        )
    c_out, c_dumps = cm.run_with_dumps(xq)
    ref_out, ref_caps = run_oracle(model, xq, capture=True)
    n = len(xq)
    out_bad = (c_out.reshape(n, -1) != ref_out.reshape(n, -1)).any(axis=1)
    order = input_tensors(model) + [op.output for op in model.ops]
    if set(order) != {name for name, _, _ in cm.dump_layout}:
        raise Q4Error(f"verify: C model '{cm.name}' has other tensors than model '{model.name}'")
    diffs = {t: c_dumps[t] != ref_caps[t].reshape(n, -1) for t in order}
    bad = out_bad.copy()
    for d in diffs.values():
        bad |= d.any(axis=1)
    if not bad.any():
        return VerifyResult(n, 0, 0, None)

    s = int(np.flatnonzero(bad)[0])
    producer = {op.output: op.name for op in model.ops}
    first = None
    for t in order:
        idx = np.flatnonzero(diffs[t][s])
        if len(idx):
            i = int(idx[0])
            first = Mismatch(
                s, t, producer.get(t), i, int(c_dumps[t][s, i]), int(ref_caps[t][s].reshape(-1)[i])
            )
            break
    if first is None:  # every dump agrees but the output differs: the final copy-out is at fault
        c, ref = c_out[s].reshape(-1), ref_out[s].reshape(-1)
        i = int(np.flatnonzero(c != ref)[0])
        first = Mismatch(s, model.output, producer.get(model.output), i, int(c[i]), int(ref[i]))
    return VerifyResult(n, int(bad.sum()), int(out_bad.sum()), first)
