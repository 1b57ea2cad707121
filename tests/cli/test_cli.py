"""The command line: every command end to end, and its error behaviour."""

import json

import numpy as np
import pytest

from q4sdk.cli import main
from small_onnx import write_small_onnx

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_small_onnx(d / "m.onnx")
    x = RNG.uniform(0, 1, (40, 6, 6, 3)).astype(np.float32)  # channels-last, as image sets come
    np.savez(d / "calib.npz", x=x[:32])
    np.savez(d / "test.npz", x=x[32:], y=RNG.integers(0, 5, 8))
    return d


def test_quantize_generate_verify(workdir, capsys):
    d = workdir
    assert (
        main(
            [
                "quantize",
                str(d / "m.onnx"),
                "--calib",
                str(d / "calib.npz"),
                "--nhwc",
                "-o",
                str(d / "m.q4"),
                "--activations",
                "int4",
                "--unsigned-activations",
                "-q",
            ]
        )
        == 0
    )
    assert main(["inspect", str(d / "m.q4")]) == 0
    assert main(["generate", str(d / "m.q4"), "-o", str(d / "gen"), "--name", "small"]) == 0
    out = capsys.readouterr().out
    assert "arena (one buffer)" in out and (d / "gen" / "small.c").is_file()
    rc = main(
        [
            "verify",
            str(d / "m.q4"),
            str(d / "gen"),
            "--data",
            str(d / "test.npz"),
            "--nhwc",
            "--json",
            str(d / "v.json"),
        ]
    )
    assert rc == 0
    v = json.loads((d / "v.json").read_text())
    assert v["samples"] == 8 and v["mismatches"] == 0
    assert 0.0 <= v["accuracy"] <= 1.0 and v["float_accuracy"] is not None


def test_user_files_are_not_overwritten(workdir, capsys):
    d = workdir
    (d / "keep.q4").write_text("mine")
    rc = main(
        [
            "quantize",
            str(d / "m.onnx"),
            "--calib",
            str(d / "calib.npz"),
            "--nhwc",
            "-o",
            str(d / "keep.q4"),
            "-q",
        ]
    )
    assert rc == 2 and (d / "keep.q4").read_text() == "mine"
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["quantize", "{d}/missing.onnx", "--calib", "{d}/calib.npz", "-o", "{d}/o.q4"], "missing.onnx"),
        (["quantize", "{d}/m.onnx", "--calib", "{d}/calib.npz", "-o", "{d}/o.q4"], "--nhwc"),  # layout hint
        (["quantize", "{d}/m.onnx", "--calib", "{d}/nothere.npz", "-o", "{d}/o.q4"], "nothere.npz"),
        (["generate", "{d}/calib.npz", "-o", "{d}/g2"], "calib.npz"),
        (["verify", "{d}/m.q4", "{d}/nodir", "--data", "{d}/test.npz", "--nhwc"], "nodir"),
    ],
)
def test_errors_are_one_line_and_name_the_culprit(workdir, capsys, argv, needle):
    d = workdir
    if not (d / "m.q4").exists():
        main(
            [
                "quantize",
                str(d / "m.onnx"),
                "--calib",
                str(d / "calib.npz"),
                "--nhwc",
                "-o",
                str(d / "m.q4"),
                "-q",
            ]
        )
    capsys.readouterr()
    rc = main([a.format(d=d) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and "\n" not in err and needle in err
    assert not (d / "o.q4").exists()


def test_verify_detects_a_corrupted_weight(workdir, capsys):
    d = workdir
    if not (d / "gen").exists():
        test_quantize_generate_verify(workdir, capsys)
    src = (d / "gen" / "small_weights.c").read_text()
    bad = d / "bad"
    import shutil

    shutil.copytree(d / "gen", bad)
    # flip the first packed weight byte of the first layer
    i = src.index("0x", src.index("uint8_t"))
    byte = int(src[i : i + 4], 16)
    (bad / "small_weights.c").write_text(src[:i] + f"0x{byte ^ 0x11:02x}" + src[i + 4 :])
    rc = main(
        [
            "verify",
            str(d / "m.q4"),
            str(bad),
            "--data",
            str(d / "test.npz"),
            "--nhwc",
            "--json",
            str(d / "bad.json"),
        ]
    )
    assert rc == 1
    v = json.loads((d / "bad.json").read_text())
    assert v["mismatches"] > 0 and v["first_mismatch"]["op"] == "conv"


def test_help_for_every_command(capsys):
    for cmd in ("quantize", "generate", "verify", "inspect", "demo"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
    assert "q4sdk" in capsys.readouterr().out
