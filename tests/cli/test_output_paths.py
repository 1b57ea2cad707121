"""Issue 15, D5: no command replaces an output without --force, JSON and report files are written
atomically, and every output-path fault is a one-line ``error: ...`` naming the path (exit 2)."""

import json
import os
import shutil

import pytest

from q4sdk.cli import main


def _fails_naming(capsys, argv, path) -> str:
    """Run the CLI; it must exit 2 with one line 'error: ...' (after any progress lines) that names
    ``path``."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, lines
    err = lines[-1]
    assert err.startswith("error: ") and not any("error" in line for line in lines[:-1]), lines
    assert str(path) in err, err
    return err


def _verify(d, *extra):
    return ["verify", d / "m.q4", d / "gen", "--data", d / "test.npz", "--count", "2", *extra]


def _report(d, out, *extra):
    return ["report", d / "m.q4", "--data", d / "test.npz", "--count", "4", "-o", out, *extra]


def _quantize(d, out):
    return ["quantize", d / "m.onnx", "--calib", d / "calib.npz", "--calib-samples", "8", "-q", "-o", out]


# --------------------------------------------------------------------------- no overwrite without --force


def test_verify_json_is_kept_without_force_and_replaced_with_it(small, tmp_path, capsys):
    notes = tmp_path / "results.json"
    notes.write_text("my notes")
    err = _fails_naming(capsys, _verify(small, "--json", notes), notes)
    assert "--force" in err and notes.read_text() == "my notes"
    assert main([str(a) for a in _verify(small, "--json", notes, "--force")]) == 0
    assert json.loads(notes.read_text())["samples"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_report_files_are_kept_without_force_and_replaced_with_it(small, tmp_path, capsys):
    rep = tmp_path / "rep"
    assert main([str(a) for a in _report(small, rep)]) == 0
    (rep / "report.md").write_text("my edits")
    _fails_naming(capsys, _report(small, rep), rep / "report.md")
    assert (rep / "report.md").read_text() == "my edits"
    assert main([str(a) for a in _report(small, rep, "--force")]) == 0
    assert (rep / "report.md").read_text().startswith("#")
    assert not [p for p in tmp_path.iterdir() if p.name != "rep"]  # the temporary folder is gone


def test_report_force_replaces_the_folder_all_at_once(small, tmp_path, capsys, monkeypatch):
    """A failure while the new report is written leaves the old report folder whole."""
    import q4sdk.codegen.output_tree as output_tree

    rep = tmp_path / "rep"
    assert main([str(a) for a in _report(small, rep)]) == 0
    (rep / "report.md").write_text("old report")
    (rep / "mine.txt").write_text("kept")
    before = {p.name: p.read_bytes() for p in rep.iterdir()}
    written = []

    def write_then_fail(files, root):
        for rel in sorted(files)[:2]:
            (root / rel).write_bytes(b"partial")
            written.append(rel)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output_tree, "_write_tree", write_then_fail)
    _fails_naming(capsys, _report(small, rep, "--force"), rep)
    assert len(written) == 2
    assert {p.name: p.read_bytes() for p in rep.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no hidden sibling left
    monkeypatch.undo()
    assert main([str(a) for a in _report(small, rep, "--force")]) == 0
    assert (rep / "report.md").read_text().startswith("#") and (rep / "mine.txt").read_text() == "kept"


def test_demo_output_is_kept_without_force(tmp_path, capsys):
    (tmp_path / "digits.q4").write_text("mine")
    _fails_naming(capsys, ["demo", "-o", tmp_path], tmp_path / "digits.q4")
    assert (tmp_path / "digits.q4").read_text() == "mine"


def test_run_json_is_kept_without_force(small, tmp_path, capsys):
    out = tmp_path / "run.json"
    out.write_text("mine")
    _fails_naming(
        capsys,
        ["run", small / "m.q4", "--board", "mps2-an386", "--data", small / "test.npz", "--json", out],
        out,
    )
    assert out.read_text() == "mine"


# --------------------------------------------------------------------------- path faults


def test_a_file_where_a_folder_is_expected(small, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    for argv in (
        ["generate", small / "m.q4", "-o", f],
        ["generate", small / "m.q4", "-o", f, "--force"],
        ["generate", small / "m.q4", "-o", f, "--board", "mps2-an386"],
        _report(small, f),
        _report(small, f, "--force"),
        _quantize(small, f / "m.q4"),
        _verify(small, "--json", f / "v.json"),
        ["generate", small / "m.q4", "-o", f / "sub"],
    ):
        _fails_naming(capsys, argv, f)
    assert f.read_text() == "x"


def test_a_folder_where_a_file_is_expected(small, tmp_path, capsys):
    for argv in (_quantize(small, tmp_path), _verify(small, "--json", tmp_path, "--force")):
        _fails_naming(capsys, argv, tmp_path)


def test_missing_parent_folder(small, tmp_path, capsys):
    missing = tmp_path / "no" / "such"
    _fails_naming(capsys, _quantize(small, missing / "m.q4"), missing)
    _fails_naming(capsys, _verify(small, "--json", missing / "v.json"), missing)
    # folders are created for generate and report
    assert main([str(a) for a in _report(small, missing / "rep")]) == 0
    assert (missing / "rep" / "report.json").is_file()


def _replaced_or_fails_naming(capsys, argv, out) -> None:
    """``generate --force`` over an odd entry may replace it (a complete new tree) or refuse with a
    one-line error naming ``out``; never an internal error or half a tree."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    if rc == 0:
        assert (out / "q4_runtime" / "q4_kernels.h").is_file() and (out / "small.c").is_file()
    else:
        assert rc == 2 and lines[-1].startswith("error: ") and str(out) in lines[-1], lines


def test_generated_runtime_folder_is_a_file(small, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", str(small / "m.q4"), "-o", str(out), "--name", "small"]) == 0
    shutil.rmtree(out / "q4_runtime")
    (out / "q4_runtime").write_text("not a folder")
    _fails_naming(capsys, ["generate", small / "m.q4", "-o", out, "--name", "small"], out)
    assert (out / "q4_runtime").read_text() == "not a folder"
    _replaced_or_fails_naming(
        capsys, ["generate", small / "m.q4", "-o", out, "--name", "small", "--force"], out
    )


def test_read_only_folders(small, tmp_path, capsys, immutable):
    ro = tmp_path / "ro"
    ro.mkdir()
    immutable(ro)
    _fails_naming(capsys, _quantize(small, ro / "m.q4"), ro / "m.q4")
    _fails_naming(capsys, ["generate", small / "m.q4", "-o", ro], ro)
    _fails_naming(
        capsys, ["generate", small / "m.q4", "-o", ro / "sub"], ro
    )  # the read-only folder is the one at fault
    _fails_naming(capsys, ["generate", small / "m.q4", "-o", ro / "fw", "--board", "mps2-an386"], ro / "fw")
    _fails_naming(capsys, _report(small, ro), ro)
    _fails_naming(capsys, _report(small, ro / "rep"), ro / "rep")
    _fails_naming(capsys, _verify(small, "--json", ro / "v.json"), ro / "v.json")
    assert os.listdir(ro) == []


def test_read_only_generated_runtime_folder(small, tmp_path, capsys, immutable):
    out = tmp_path / "gen"
    assert main(["generate", str(small / "m.q4"), "-o", str(out), "--name", "small"]) == 0
    immutable(out / "q4_runtime")
    _replaced_or_fails_naming(
        capsys, ["generate", small / "m.q4", "-o", out, "--name", "small", "--force"], out
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs procfs")
def test_unwritable_filesystem(small, capsys):
    for argv, path in (
        (_quantize(small, "/proc/m.q4"), "/proc/m.q4"),
        (["generate", small / "m.q4", "-o", "/proc/q4gen"], "/proc/q4gen"),
        (_report(small, "/proc/q4rep"), "/proc/q4rep"),
        (_verify(small, "--json", "/proc/v.json"), "/proc/v.json"),
    ):
        _fails_naming(capsys, argv, path)
