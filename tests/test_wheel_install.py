"""The wheel works outside the checkout: ``pip wheel . --no-deps``, install it into a fresh venv, then
``q4sdk quantize -> generate -> verify`` and ``generate --board`` from a folder elsewhere.

The fresh venv reuses the project venv's installed dependencies (torch, onnx, ...) through a ``.pth``
line instead of downloading them; a ``.pth`` file inside an added folder is not processed, so the
project's editable install cannot leak in. The test checks that ``q4sdk`` and its resources are
imported from the fresh venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

from small_onnx import write_small_onnx

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "q4sdk",
    "runtime_c",
    "templates",
    "boards",
)


def _run(argv, cwd, env, timeout=300) -> str:
    r = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"{' '.join(map(str, argv))} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _build_wheel(tmp: Path) -> Path:
    """``pip wheel . -w dist --no-deps`` on a copy of the checkout's packaged files."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "_resources"))
        else:
            shutil.copy2(path, src / name)
    # no build isolation: setuptools is already in this venv, and the test needs no network
    _run(
        [sys.executable, "-m", "pip", "wheel", ".", "-w", "dist", "--no-deps", "--no-build-isolation", "-q"],
        src,
        os.environ.copy(),
    )
    wheels = list((src / "dist").glob("q4sdk-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _fresh_venv(tmp: Path, wheel: Path) -> tuple[Path, dict]:
    """A venv without pip, the project venv's dependencies on its path (after its own
    site-packages), and the wheel installed into it with ``pip --python``; returns (bin, env)."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, os.environ.copy())
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (site / "project_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(tmp / "cache")  # the cffi build really happens
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
        tmp,
        env,
    )
    return venv / "bin", env


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    bin_dir, env = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "elsewhere"
    work.mkdir()

    where = _run(
        [
            bin_dir / "python",
            "-c",
            "import q4sdk, q4sdk.resources as r; print(q4sdk.__file__); print(r.ROOT)",
        ],
        work,
        env,
    ).split()
    print("q4sdk imported from", where[0], "resources in", where[1])
    venv = bin_dir.parent.resolve()
    assert Path(where[0]).resolve().is_relative_to(venv), where
    assert Path(where[1]).resolve() == Path(where[0]).resolve().parent / "_resources", where
    for tree in ("runtime_c/include/q4_kernels.h", "templates/model.c.j2", "boards/mps2-an386/board.json"):
        assert (Path(where[1]) / tree).is_file(), tree

    write_small_onnx(work / "m.onnx")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (24, 3, 6, 6)).astype(np.float32)
    np.savez(work / "calib.npz", x=x[:16])
    np.savez(work / "test.npz", x=x[16:], y=rng.integers(0, 5, 8))
    q4sdk = bin_dir / "q4sdk"
    _run(
        [
            q4sdk,
            "quantize",
            "m.onnx",
            "--calib",
            "calib.npz",
            "-o",
            "m.q4",
            "-q",
            "--calib-samples",
            "16",
            "--activations",
            "int4",
            "--unsigned-activations",
        ],
        work,
        env,
    )
    _run([q4sdk, "generate", "m.q4", "-o", "gen", "--name", "small"], work, env)
    out = _run([q4sdk, "verify", "m.q4", "gen", "--data", "test.npz", "--json", "v.json"], work, env)
    assert "bit-exact" in out
    out = _run([q4sdk, "generate", "m.q4", "-o", "fw", "--board", "mps2-an386"], work, env)
    assert "mps2-an386" in out
    for f in ("Makefile", "CMakeLists.txt", "main.c", "model/m.c", "model/q4_runtime/q4_kernels.h"):
        assert (work / "fw" / f).is_file(), f
    if shutil.which("arm-none-eabi-gcc") or os.environ.get("CI"):
        _run(["make", "-C", "fw", "-j2"], work, env)  # the project builds from the wheel's runtime
