"""Shared pieces of the fuzzing suite: a small model with every op kind, its data, a ``reseal``
that rewrites a ``.q4`` manifest with valid lengths and checksums, and ``run_cli`` that classifies
a command's outcome the way the reliability census does."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import struct

import numpy as np

from q4sdk.cli import main

HEADER = struct.Struct("<8sIQQ")


def every_kind_model():
    """tests/ir/test_q4file.make_model: 8x8x3 input, every op kind, a two-input dense head."""
    from ir.test_q4file import make_model

    return make_model()


def split(raw: bytes) -> tuple[bytes, int, dict, bytes]:
    """(magic, version, manifest, data section) of a .q4 file."""
    magic, ver, mlen, dlen = HEADER.unpack_from(raw)
    start = -(-(HEADER.size + mlen) // 64) * 64
    return magic, ver, json.loads(raw[HEADER.size : HEADER.size + mlen]), raw[start : start + dlen]


def seal(manifest, data: bytes, magic=b"Q4SDK\0\0\0", version=1) -> bytes:
    """A .q4 file with ``manifest`` (a dict, or raw JSON text) and ``data``, lengths and sha256
    correct."""
    text = (
        manifest.encode("utf-8", "surrogatepass")
        if isinstance(manifest, str)
        else json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    )
    head = HEADER.pack(magic, version, len(text), len(data)) + text
    body = head + bytes(-len(head) % 64) + data
    return body + hashlib.sha256(body).digest()


def reseal(raw: bytes, edit) -> bytes:
    """``raw`` with its manifest passed through ``edit(m)`` (which edits in place, or returns a
    new manifest or raw JSON text), re-sealed."""
    magic, ver, m, data = split(raw)
    out = edit(m)
    return seal(m if out is None else out, data, magic, ver)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``q4sdk argv`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def outcome(rc: int, err: str) -> str:
    """The census class of one run: clean (exit 2 with one 'error:' line), internal error (exit 3),
    accepted (exit 0 / 1), or 'messy' (exit 2 with a multi-line or missing message)."""
    if rc == 3 or "internal error" in err:
        return "internal error"
    if rc == 2:
        lines = err.rstrip("\n").split("\n")
        return "clean" if lines[-1].startswith("error: ") and len(lines[-1]) > 7 else "messy"
    return "accepted" if rc in (0, 1) else f"exit {rc}"


def tiny_data(path, n=4, seed=0):
    """A labelled data file for the every-kind model (NCHW 3x8x8, labels in [0, 3))."""
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.uniform(0, 1, (n, 3, 8, 8)).astype(np.float32), y=rng.integers(0, 3, n))
    return path


def write_killed_at(step: int, files: dict, out, exchange: bool = True) -> None:
    """In a forked child: ``output_tree.write_files(files, out, True)``, SIGKILLing the process
    right before its ``step``-th file-system step (folder creation, file, link, rename, exchange,
    clean-up); returns normally if the write has fewer steps."""
    import os
    import signal

    from q4sdk.codegen import output_tree

    left = [step]

    def counted(fn):
        def wrapped(*args, **kwargs):
            left[0] -= 1
            if left[0] < 0:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return wrapped

    output_tree.os = type("os", (), {n: getattr(os, n) for n in dir(os) if not n.startswith("__")})
    for name in ("mkdir", "rename", "link"):
        setattr(output_tree.os, name, counted(getattr(os, name)))
    output_tree.shutil.rmtree = counted(output_tree.shutil.rmtree)
    output_tree._exchange = counted(output_tree._exchange if exchange else (lambda a, b: False))
    output_tree.open = counted(open)
    output_tree.write_files(files, out, True)
