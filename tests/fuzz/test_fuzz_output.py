"""Output trees and paths (census classes 4a, 4b): ``generate --force`` swaps the whole folder in
at once (D2), folders get normal permissions (D11), a process killed at any point leaves the old
or the new complete output (kill test), and output-path faults are one-line errors."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile import every_kind_model, outcome, run_cli, tiny_data, write_killed_at

from q4sdk.codegen import output_tree
from q4sdk.codegen.render import generate
from q4sdk.errors import Q4Error
from q4sdk.ir.q4file import save_q4

ROOT = Path(__file__).resolve().parents[2]


def tree_hash(d: Path) -> str | None:
    """A digest of a folder: every path (folders too), file bytes and link targets; None if absent."""
    if not d.exists():
        return None
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        h.update(p.relative_to(d).as_posix().encode() + b"\0")
        if p.is_symlink():
            h.update(b"L" + os.readlink(p).encode())
        elif p.is_file():
            h.update(b"F" + hashlib.sha256(p.read_bytes()).digest())
        else:
            h.update(b"D")
    return h.hexdigest()


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two .q4 files whose generated trees differ in every model file (same C name)."""
    d = tmp_path_factory.mktemp("out")
    a = every_kind_model()
    save_q4(a, d / "a.q4")
    b = every_kind_model()
    b.name = "other"
    b.ops[0].arrays["bias"][:] = 1
    b.ops[-1].arrays["bias"][:] = -1
    save_q4(b, d / "b.q4")
    return d, a, b


# ------------------------------------------------------------------------- D2: atomic swap


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_failed_force_keeps_the_old_tree(two_models, tmp_path, monkeypatch, exchange):
    """D2: an error while the new tree is written (ENOSPC, EIO) leaves the old tree untouched and
    no temporary folder behind; the review's reproducer made one entry unreplaceable."""
    d, a, b = two_models
    out = tmp_path / "out"
    generate(a, out, "net")
    (out / "notes.txt").write_text("mine")
    before = tree_hash(out)
    if not exchange:
        monkeypatch.setattr(output_tree, "_exchange", lambda x, y: False)
    calls = []

    def failing_write(files, root):
        calls.append(1)
        (root / "net.c").write_text("partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output_tree, "_write_tree", failing_write)
    with pytest.raises(Q4Error, match="No space left"):
        generate(b, out, "net", overwrite=True)
    assert calls and tree_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_second_rename_puts_the_old_tree_back(two_models, tmp_path, monkeypatch):
    d, a, b = two_models
    out = tmp_path / "out"
    generate(a, out, "net")
    before = tree_hash(out)
    monkeypatch.setattr(output_tree, "_exchange", lambda x, y: False)
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".out.new-"):
            raise OSError(5, "Input/output error")
        return real_rename(src, dst)

    monkeypatch.setattr(output_tree.os, "rename", rename)
    with pytest.raises(Q4Error, match="Input/output error"):
        generate(b, out, "net", overwrite=True)
    assert tree_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_replaces_generated_entries_and_keeps_the_users(two_models, tmp_path):
    d, a, b = two_models
    out = tmp_path / "out"
    generate(a, out, "net")
    (out / "Makefile").write_text("all:\n")
    (out / "extra").mkdir()
    (out / "extra" / "f.txt").write_text("x")
    generate(b, out, "net", overwrite=True)
    assert (out / "Makefile").read_text() == "all:\n" and (out / "extra" / "f.txt").read_text() == "x"
    ref = tmp_path / "ref"
    generate(b, ref, "net")
    for f in ("net.c", "net.h", "net_weights.c"):
        assert (out / f).read_bytes() == (ref / f).read_bytes()
    with pytest.raises(Q4Error, match="already exists"):
        generate(a, out, "net")


def test_generate_into_a_symlinked_folder_keeps_the_link(two_models, tmp_path):
    d, a, b = two_models
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    generate(a, tmp_path / "link", "net")
    generate(b, tmp_path / "link", "net", overwrite=True)
    assert (tmp_path / "link").is_symlink() and (real / "net.c").is_file()


def test_generate_is_deterministic(two_models, tmp_path):
    """Census class 6: the same model gives the same tree, byte for byte, plain and packed."""
    d, a, _ = two_models
    for packed in (False, True):
        try:
            generate(a, tmp_path / f"x{packed}", "net", pack_activations=packed)
        except Q4Error:  # the every-kind model has 8-bit tensors: no packed build
            continue
        generate(a, tmp_path / f"y{packed}", "net", pack_activations=packed)
        assert tree_hash(tmp_path / f"x{packed}") == tree_hash(tmp_path / f"y{packed}")


# ------------------------------------------------------------------------- D11: permissions


@pytest.mark.parametrize("umask,dir_mode,file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_output_folders_follow_the_umask(two_models, tmp_path, umask, dir_mode, file_mode):
    d, a, _ = two_models
    old = os.umask(umask)
    try:
        generate(a, tmp_path / "out", "net")
    finally:
        os.umask(old)
    for p in [tmp_path / "out", *(tmp_path / "out").rglob("*")]:
        want = dir_mode if p.is_dir() else file_mode
        assert p.stat().st_mode & 0o777 == want, (p, oct(p.stat().st_mode))


def test_force_keeps_the_folders_own_mode(two_models, tmp_path):
    d, a, b = two_models
    generate(a, tmp_path / "out", "net")
    os.chmod(tmp_path / "out", 0o711)
    generate(b, tmp_path / "out", "net", overwrite=True)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o711


# ------------------------------------------------------------------------- kill test (4b)


def _kill_loop(argv_for, states: dict[str | None, str], target: Path, n: int, delays, cwd) -> list:
    """Run ``argv_for(current state)`` n times, each SIGKILLed after the next delay; after each,
    the target must be one of the complete ``states`` (hash -> label). Returns the labels seen."""
    seen = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i in range(n):
        cur = (
            tree_hash(target)
            if target.is_dir()
            else (hashlib.sha256(target.read_bytes()).hexdigest() if target.exists() else None)
        )
        assert cur in states, f"kill {i}: target is neither complete output"
        proc = subprocess.Popen(
            [sys.executable, "-m", "q4sdk", *argv_for(states[cur])],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(next(delays))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = (
            tree_hash(target)
            if target.is_dir()
            else (hashlib.sha256(target.read_bytes()).hexdigest() if target.exists() else None)
        )
        assert after in states, f"kill {i} after {proc.returncode}: mixed or missing target"
        seen.append(states[after])
    return seen


def _run_time(argv, cwd) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "q4sdk", *argv],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return time.perf_counter() - t


def test_kill_generate_force(two_models, tmp_path):
    """SIGKILL ``generate --force`` (switching between two models) at seeded random points, most of
    them late in the run where the tree is written and swapped: the target is always exactly the
    old or the new complete tree."""
    d, a, b = two_models
    out = tmp_path / "out"
    generate(b, out, "net")  # the CLI writes the same bytes (tests/codegen)
    states = {tree_hash(out): "b"}
    t_full = _run_time(["generate", str(d / "a.q4"), "-o", str(out), "--name", "net", "--force"], tmp_path)
    states[tree_hash(out)] = "a"
    rng = np.random.default_rng(3)
    delays = iter(t_full * rng.uniform(0.55, 1.1, 3))
    other = {"a": d / "b.q4", "b": d / "a.q4"}
    seen = _kill_loop(
        lambda s: ["generate", str(other[s]), "-o", str(out), "--name", "net", "--force"],
        states,
        out,
        3,
        delays,
        tmp_path,
    )
    assert len(seen) == 3
    # 4c: SIGINT ends the run with "error: interrupted" (exit 130), or it had finished (exit 0)
    cur = states[tree_hash(out)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "q4sdk",
            "generate",
            str(other[cur]),
            "-o",
            str(out),
            "--name",
            "net",
            "--force",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(t_full * 0.8)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    # (-SIGINT: the signal came outside the command's handler, in interpreter start-up or tear-down)
    assert proc.returncode in (0, 130, -signal.SIGINT), err
    assert proc.returncode != 130 or err.strip().splitlines()[-1] == "error: interrupted"
    assert tree_hash(out) in states


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_kill_at_every_step_of_the_write(two_models, tmp_path, exchange):
    """A forked child writes the new tree over the old one and SIGKILLs itself right before its
    k-th file-system step (folder creation, each file, each link, the swap, the clean-up), for
    every k: the target is always the old or the new complete tree."""
    from q4sdk.codegen.render import render

    d, a, b = two_models
    out = tmp_path / "out"
    files = {"a": render(a, "net")[0], "b": render(b, "net")[0]}
    generate(b, out, "net")
    (out / "notes.txt").write_text("kept")
    states = {tree_hash(out): "b"}
    output_tree.write_files(files["a"], out, True)
    states[tree_hash(out)] = "a"

    k, done, windows = 0, False, 0
    while not done:
        cur = states[tree_hash(out)]
        nxt = "a" if cur == "b" else "b"
        pid = os.fork()
        if pid == 0:
            try:
                write_killed_at(k, files[nxt], out, exchange)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        done = os.WIFEXITED(status)  # k passed the last step: the write completed
        after = tree_hash(out)
        if after is None and not exchange:  # the fallback's one window: between its two renames
            olds = list(tmp_path.glob(".out.old-*"))
            assert len(olds) == 1 and states.get(tree_hash(olds[0])) == cur, f"step {k}: old tree lost"
            os.rename(olds[0], out)  # what a user recovers by hand (docs)
            after = tree_hash(out)
            windows += 1
        assert after in states, f"killed before step {k}: the target is a mixed tree"
        assert states[after] == (nxt if done else states[after])
        k += 1
    assert k > 15  # every file, the folder, the swap and the clean-up were a kill point
    assert windows == (0 if exchange else 1)


def test_kill_quantize_force(tmp_path):
    """SIGKILL ``quantize --force`` over an existing .q4: the file is the old or the new one."""
    from small_onnx import write_small_onnx

    write_small_onnx(tmp_path / "m.onnx")
    np.savez(
        tmp_path / "calib.npz", x=np.random.default_rng(0).uniform(0, 1, (16, 6, 6, 3)).astype(np.float32)
    )
    q4 = tmp_path / "m.q4"
    base = ["quantize", "m.onnx", "--calib", "calib.npz", "--nhwc", "-o", "m.q4", "--force", "-q"]
    t_full = _run_time(base, tmp_path)
    # the .q4 meta records the run time, so each finished run is a new complete file: the check
    # is that the file always loads (old or new, never partial) and no temporary file remains
    from q4sdk.ir.q4file import load_q4

    rng = np.random.default_rng(5)
    for i, delay in enumerate(t_full * rng.uniform(0.6, 1.1, 2)):
        want = "int4" if i % 2 == 0 else "int8"
        proc = subprocess.Popen(
            [sys.executable, "-m", "q4sdk", *base, "--activations", want],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        load_q4(q4)  # complete and valid: old or new
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("m.q4")] == ["m.q4"]


# ------------------------------------------------------------------------- 4a: path faults


@pytest.fixture(scope="module")
def gen_setup(two_models):
    d, a, _ = two_models
    tiny_data(d / "data.npz")
    if not (d / "gen").exists():
        generate(a, d / "gen", "net")
    return d


def _clean(argv, path_fragment):
    rc, out, err = run_cli(argv)
    assert outcome(rc, err) == "clean", (rc, err)
    assert path_fragment in err.strip().splitlines()[-1]


def test_generate_onto_an_existing_file(gen_setup, tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine")
    for force in ([], ["--force"]):
        _clean(["generate", str(gen_setup / "a.q4"), "-o", str(f), *force], str(f))
        assert f.read_text() == "mine"


def test_generate_under_a_file_or_unwritable_place(gen_setup, tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine")
    _clean(["generate", str(gen_setup / "a.q4"), "-o", str(f / "sub")], "afile")
    _clean(["generate", str(gen_setup / "a.q4"), "-o", "/proc/q4sdk_out"], "/proc")


def test_generate_force_over_odd_entries(gen_setup, tmp_path):
    """'q4_runtime' as a file, '<name>.c' as a folder: --force replaces them whole."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "q4_runtime").write_text("x")
    (out / "net.c").mkdir()
    rc, _, err = run_cli(["generate", str(gen_setup / "a.q4"), "-o", str(out), "--name", "net"])
    assert outcome(rc, err) == "clean" and (out / "q4_runtime").read_text() == "x"
    rc, _, err = run_cli(["generate", str(gen_setup / "a.q4"), "-o", str(out), "--name", "net", "--force"])
    assert rc == 0, err
    assert (out / "q4_runtime").is_dir() and (out / "net.c").is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_generate_into_a_read_only_folder(gen_setup, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _clean(["generate", str(gen_setup / "a.q4"), "-o", str(ro / "out")], "ro")
        _clean(["generate", str(gen_setup / "a.q4"), "-o", str(ro), "--force"], "ro")
    finally:
        ro.chmod(0o755)


def test_verify_json_does_not_overwrite(gen_setup, tmp_path):
    f = tmp_path / "results.json"
    f.write_text("my notes")
    _clean(
        [
            "verify",
            str(gen_setup / "a.q4"),
            str(gen_setup / "gen"),
            "--data",
            str(gen_setup / "data.npz"),
            "--json",
            str(f),
        ],
        str(f),
    )
    assert f.read_text() == "my notes"


def test_verify_json_into_a_missing_folder(gen_setup, tmp_path):
    f = tmp_path / "nope" / "r.json"
    _clean(
        [
            "verify",
            str(gen_setup / "a.q4"),
            str(gen_setup / "gen"),
            "--data",
            str(gen_setup / "data.npz"),
            "--json",
            str(f),
        ],
        "nope",
    )


def test_verify_json_onto_a_folder(gen_setup, tmp_path):
    _clean(
        [
            "verify",
            str(gen_setup / "a.q4"),
            str(gen_setup / "gen"),
            "--data",
            str(gen_setup / "data.npz"),
            "--json",
            str(tmp_path),
        ],
        str(tmp_path),
    )


def test_report_does_not_overwrite(gen_setup, tmp_path):
    rep = tmp_path / "rep"
    argv = ["report", str(gen_setup / "a.q4"), "--data", str(gen_setup / "data.npz"), "-o", str(rep)]
    assert run_cli(argv)[0] == 0
    (rep / "report.md").write_text("my edits")
    _clean(argv, str(rep))
    assert (rep / "report.md").read_text() == "my edits"


def test_generate_into_the_current_folder_keeps_it(two_models, tmp_path, monkeypatch):
    """``generate -o .`` (and --force over it) writes into the folder the shell is in, which stays
    the same folder (a whole-folder swap would leave the shell in the removed old tree)."""
    d, a, b = two_models
    here = tmp_path / "here"
    here.mkdir()
    (here / "notes.txt").write_text("mine")
    monkeypatch.chdir(here)
    inode = here.stat().st_ino
    generate(a, Path("."), "net")
    generate(b, Path("."), "net", overwrite=True)
    assert here.stat().st_ino == inode and (here / "notes.txt").read_text() == "mine"
    ref = tmp_path / "ref"
    generate(b, ref, "net")
    assert all((here / f).read_bytes() == (ref / f).read_bytes() for f in ("net.c", "net.h", "net_weights.c"))
    assert sorted(p.name for p in here.iterdir()) == [
        "net.c",
        "net.h",
        "net_weights.c",
        "notes.txt",
        "q4_runtime",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_in_place_swap_puts_everything_back_on_error(two_models, tmp_path, monkeypatch):
    d, a, b = two_models
    here = tmp_path / "here"
    generate(a, here, "net")
    before = tree_hash(here)
    monkeypatch.chdir(here)
    real_put, calls = output_tree._put, []

    def failing_put(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return real_put(src, dst)

    monkeypatch.setattr(output_tree, "_put", failing_put)
    with pytest.raises(Q4Error, match="Input/output error"):
        generate(b, Path("."), "net", overwrite=True)
    assert tree_hash(here) == before
