"""Helpers every ``q4sdk`` command shares: data arguments, the samples a model reads, output paths.

Output rules, the same for every command: an existing output is replaced only with ``--force``; a
file is written to a temporary name in its own folder and renamed over the target (``os.replace``),
so it is either the old file or the new one, never half of either; and every fault of an output
path (a file where a folder is expected, a missing parent, a folder that cannot be written) is a
``Q4Error`` naming the path.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from q4sdk.errors import Q4Error
from q4sdk.files import write_atomic


def add_data_args(
    p: argparse.ArgumentParser, flag: str = "data", required: bool = True, help: str | None = None
) -> None:
    """``--<flag> FILE`` (a .npy/.npz data file) and ``--nhwc``."""
    p.add_argument(
        f"--{flag}",
        required=required,
        metavar="FILE",
        help=help or ".npy or .npz (array 'x', labels 'y' optional) in the model's input layout",
    )
    p.add_argument("--nhwc", action="store_true", help="the data is channels-last (N,H,W,C)")


def add_force_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--force", action="store_true", help=f"replace {what} if it exists")


def model_samples(model, path: str, nhwc: bool, count: int | None = None, start: int = 0):
    """The samples of data file ``path`` for ``model``: float32 in the model's logical (NCHW) layout,
    as the float graph takes them, with labels when the file has them (a ``Samples``)."""
    from q4sdk.check.datasets import load_samples

    layout = model.meta.get("input_layout", "NCHW")
    shape = tuple(model.meta.get("input_shape_float") or ()) or None
    return load_samples(path, shape, nhwc=nhwc or layout == "NHWC", limit=count, start=start)


def quantized_samples(model, path: str, nhwc: bool, count: int | None = None, start: int = 0):
    """``(samples, xq)``: the float samples (``model_samples``) and the int8 inputs [N, *input shape]
    the C model takes, quantized as the oracle does."""
    from q4sdk.ir.oracle import quantize_input

    data = model_samples(model, path, nhwc, count, start)
    layout = model.meta.get("input_layout", "NCHW")
    x = data.x.transpose(0, 2, 3, 1) if layout == "NHWC" and data.x.ndim == 4 else data.x
    return data, quantize_input(model, x)


def format_generate_report(report) -> str:
    """The per-op table and the totals that ``generate`` prints."""
    rows = [f"{'op':<24} {'kind':<18} {'MACs':>12} {'weight bytes':>13}"]
    for o in report.ops:
        rows.append(f"{o.name[:24]:<24} {o.kind:<18} {o.macs:>12,} {o.weight_bytes:>13,}")
    rows.append("")
    rows.append(f"MACs per inference    {report.macs:,}")
    rows.append(
        f"weights in flash      {report.weight_bytes:,} bytes (packed INT4 + bias/multiplier/shift tables)"
    )
    rows.append(f"arena (one buffer)    {report.arena_summary} (peak at '{report.peak_op}')")
    rows.append(f"files                 {', '.join(str(f) for f in report.files)}")
    return "\n".join(rows)


# --------------------------------------------------------------------------- output paths


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def check_output_file(path: str | Path, force: bool) -> Path:
    """``path`` as a file the command may write: Q4Error naming it if it exists (without ``force``),
    is a folder, or its folder is missing or not a folder."""
    p = Path(path)
    if p.is_dir():
        raise Q4Error(f"{p}: is a directory (expected a file name)")
    if p.exists() and not force:
        raise Q4Error(f"{p}: already exists (use --force to overwrite)")
    parent = p.parent
    if not parent.exists():
        raise Q4Error(f"{p}: directory '{parent}' does not exist")
    if not parent.is_dir():
        raise Q4Error(f"{p}: '{parent}' is not a directory")
    return p


def check_output_dir(path: str | Path, entries: list[str] | tuple[str, ...], force: bool) -> Path:
    """``path`` as a folder the command writes ``entries`` into: Q4Error naming it if it is an
    existing file, if one of ``entries`` is already there (without ``force``), or if its parent is a
    file. A missing parent is created by the writer."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise Q4Error(f"{p}: exists and is not a directory")
    if p.is_dir() and not force:
        found = [e for e in entries if (p / e).exists()]
        if found:
            raise Q4Error(f"{p / found[0]}: already exists (use --force to overwrite)")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise Q4Error(f"{p}: '{parent}' is not a directory")
            break
    return p


def write_json(path: str | Path, data: dict, force: bool) -> None:
    """``data`` as indented, key-sorted JSON in ``path`` (``check_output_file`` + ``write_atomic``)."""
    p = check_output_file(path, force)
    write_atomic(p, json.dumps(data, indent=2, sort_keys=True) + "\n")


def cannot_write(path: str | Path, e: OSError) -> Q4Error:
    """The Q4Error for an OSError met while writing the output ``path``."""
    culprit = str(e.filename or "")
    temporary = any(part.startswith(".") and ".tmp" in part for part in Path(culprit).parts)
    where = f" ('{culprit}')" if culprit and culprit != str(path) and not temporary else ""
    return Q4Error(f"{path}: cannot write ({_why(e)}){where}")
