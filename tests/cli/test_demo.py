from q4sdk.cli import main


def test_demo_runs_bit_exact_and_reports(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "FP32 accuracy" in out and "arena (RAM)" in out
    acc = {
        line.split()[0]: float(line.split()[-2] if line.strip().endswith("%") else line.split()[3])
        for line in out.splitlines()
        if "accuracy" in line
    }
    assert acc["FP32"] > 90.0 and acc["INT4"] > 85.0
    assert (tmp_path / "digits.q4").is_file() and (tmp_path / "c" / "digits.c").is_file()
