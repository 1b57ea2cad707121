"""Fixtures of the command-line tests: a small ONNX model, its data, its .q4 and generated C."""

import shutil
import subprocess

import numpy as np
import pytest

from small_onnx import write_small_onnx


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A folder with m.onnx, calib.npz and test.npz (NCHW, labels), m.q4 (W4A8) and gen/ (its C)."""
    from q4sdk.cli import main

    d = tmp_path_factory.mktemp("small")
    write_small_onnx(d / "m.onnx")
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (40, 3, 6, 6)).astype(np.float32)
    np.savez(d / "calib.npz", x=x[:32])
    np.savez(d / "test.npz", x=x[32:], y=rng.integers(0, 5, 8))
    assert (
        main(
            [
                "quantize",
                str(d / "m.onnx"),
                "--calib",
                str(d / "calib.npz"),
                "-o",
                str(d / "m.q4"),
                "-q",
                "--calib-samples",
                "16",
            ]
        )
        == 0
    )
    assert main(["generate", str(d / "m.q4"), "-o", str(d / "gen"), "--name", "small"]) == 0
    return d


@pytest.fixture
def immutable(tmp_path):
    """``immutable(path)`` makes an existing file or folder unwritable even for root (chattr +i),
    undone after the test; skips where chattr does not work."""
    made = []

    def make(path):
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not installed")
        r = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {r.stderr.strip()}")
        made.append(path)
        return path

    yield make
    if made:  # the whole folder: a command may have moved an immutable entry elsewhere in it
        subprocess.run(["chattr", "-R", "-i", str(tmp_path)], check=False, capture_output=True)
