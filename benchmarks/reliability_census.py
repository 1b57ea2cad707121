"""Re-run the bad-input census of the reliability review (smaller counts, seeded) and tabulate it.

Each class feeds q4sdk bad input through the command line (``q4sdk.cli.main`` in this process, the
same code path as the ``q4sdk`` command) or the generated C, and counts every run as one of:

- clean: exit 2 with one ``error: ...`` line;
- internal error: exit 3 (an exception that escaped ``Q4Error``), or any other exception;
- crash: a signal, a hang or a sanitizer report;
- silent wrong: exit 0 where the input must be refused, C that does not compile, or a C result
  that differs from the oracle;
- data lost: a user file overwritten without ``--force``, or a target left half-written / mixed;
- accepted: exit 0 (or 1) for odd but legitimate input, handled correctly.

The cases come from the fuzzing suite (``tests/fuzz``), so the census and CI test the same
things. Writes ``benchmarks/results/reliability_census.json`` and ``.md``.

    python benchmarks/reliability_census.py            # about 2-4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "fuzz")]

COLUMNS = ("clean", "internal error", "crash", "silent wrong", "data lost", "accepted")


def _cli(argv):
    from hostile import outcome, run_cli

    try:
        rc, out, err = run_cli(argv)
    except Exception as e:  # noqa: BLE001 - the census counts it
        return "internal error", f"{type(e).__name__}: {e}"
    kind = outcome(rc, err)
    if kind == "messy":
        kind = "internal error"
    if "\x1b" in out + err or "\u202e" in out + err:
        kind = "silent wrong"
    return kind, err.strip().splitlines()[-1] if err.strip() else ""


def corrupt_bytes(d: Path, n_mut: int) -> Counter:
    """1a: truncations and random mutations of a valid file, x 4 commands."""
    from test_fuzz_q4 import COMMANDS, _argv

    raw = (d / "m.q4").read_bytes()
    rng = np.random.default_rng(1)
    cases = [raw[: int(n)] for n in np.linspace(0, len(raw) - 1, 20)]
    for _ in range(n_mut):
        b = bytearray(raw)
        pos = int(rng.integers(len(b)))
        b[pos] ^= 1 << int(rng.integers(8))
        cases.append(bytes(b))
    c = Counter()
    for raw_case in cases:
        (d / "c.q4").write_bytes(raw_case)
        for cmd in COMMANDS:
            c[_cli(_argv(cmd, d / "c.q4", d))[0]] += 1
    return c


def hostile_manifests(d: Path, n_random: int) -> Counter:
    """1b: the named hostile manifests (every D4/D6/D7/D9 reproducer) x 4 commands, where
    acceptance by a command that must refuse counts as silent wrong; plus random edits."""
    from hostile import reseal, split
    from test_fuzz_q4 import _HOSTILE_VALUES, COMMANDS, REJECTED, _argv, _paths

    raw = (d / "m.q4").read_bytes()
    c = Counter()
    for _, edit, must in REJECTED:
        (d / "h.q4").write_bytes(reseal(raw, edit))
        for cmd in COMMANDS:
            kind = _cli(_argv(cmd, d / "h.q4", d))[0]
            c["silent wrong" if kind == "accepted" and cmd in must else kind] += 1
    manifest = split(raw)[2]
    paths = [p for p in _paths(manifest) if p]
    rng = np.random.default_rng(2)
    for _ in range(n_random):
        path = paths[int(rng.integers(len(paths)))]
        value = _HOSTILE_VALUES[int(rng.integers(len(_HOSTILE_VALUES)))]

        def edit(m, path=path, value=value):
            cur = m
            for k in path[:-1]:
                cur = cur[k]
            cur[path[-1]] = value

        (d / "h.q4").write_bytes(reseal(raw, edit))
        for cmd in ("inspect", "generate"):
            kind = _cli(_argv(cmd, d / "h.q4", d))[0]
            if kind == "accepted" and cmd == "generate":
                kind = _compiles(d / "gen")
            c[kind] += 1
    return c


def _compiles(gen: Path) -> str:
    srcs = [str(p) for p in gen.glob("*.c")]
    res = subprocess.run(["gcc", "-std=c99", "-fsyntax-only", "-I", str(gen), *srcs], capture_output=True)
    return "accepted" if res.returncode == 0 else "silent wrong"


def sanitizer_models(d: Path, seeds) -> Counter:
    """1c/1d/5: random extreme models and the every-kind model, ASan+UBSan build vs the oracle on
    extreme inputs; the D10 model with out-of-range codes, packed and unpacked."""
    from hostile import every_kind_model
    from test_fuzz_c import _w4a4_model, extreme_inputs, sanitized_run

    from q4sdk.ir.oracle import run_oracle
    from random_models import random_model

    c = Counter()
    models = [
        (random_model(np.random.default_rng(s), n_ops=7, extreme=True, name=f"x{s}"), False) for s in seeds
    ]
    models += [(every_kind_model(), False), (_w4a4_model(), False), (_w4a4_model(), True)]
    for i, (model, packed) in enumerate(models):
        tmp = d / f"san{i}"
        tmp.mkdir()
        rng = np.random.default_rng(i)
        xq = extreme_inputs(model, rng)
        try:
            status, out = sanitized_run(model, xq, tmp, pack_activations=packed)
        except AssertionError:
            c["crash"] += 1
            continue
        ok = (status == 0).all() and (out == run_oracle(model, xq).reshape(len(xq), -1)).all()
        if model.input_tensor.bits == 4:  # D10: codes out of range
            bad = xq[:1].copy()
            bad.flat[0] = 100
            (tmp / "bad").mkdir()
            st_bad, out_bad = sanitized_run(model, bad, tmp / "bad", pack_activations=packed)
            ok = ok and st_bad[0] == 1 and (out_bad == 0x55).all()
        c["accepted" if ok else "silent wrong"] += 1
    return c


def onnx_inputs(d: Path) -> Counter:
    """2: hostile ONNX graphs and non-ONNX files into quantize."""
    import onnx
    from test_fuzz_inputs import ONNX_CASES, ONNX_D3

    np.savez(d / "calib.npz", x=np.random.default_rng(0).uniform(0, 1, (8, 3, 8, 8)).astype(np.float32))
    c = Counter()
    for name, build in {**ONNX_CASES, **ONNX_D3}.items():
        onnx.save(build(), d / "m.onnx")
        (d / "o.q4").unlink(missing_ok=True)
        kind = _cli(
            ["quantize", str(d / "m.onnx"), "--calib", str(d / "calib.npz"), "-o", str(d / "o.q4"), "-q"]
        )[0]
        must_refuse = name not in ("control", "huge weight 1e30", "NaN weight") and name in ONNX_CASES
        c["silent wrong" if kind == "accepted" and must_refuse else kind] += 1
    for content in (b"", b"text", bytes(range(256))):
        (d / "bad.onnx").write_bytes(content)
        c[
            _cli(["quantize", str(d / "bad.onnx"), "--calib", str(d / "calib.npz"), "-o", str(d / "o.q4")])[0]
        ] += 1
    return c


def data_inputs(d: Path) -> Counter:
    """3a/3b: bad calibration arrays into quantize; bad labels, counts and starts into verify and
    report."""
    import onnx
    from hostile import every_kind_model, tiny_data
    from test_fuzz_inputs import CALIB_CASES, LABEL_CASES, ONNX_CASES

    from q4sdk.codegen.render import generate
    from q4sdk.ir.q4file import save_q4

    c = Counter()
    onnx.save(ONNX_CASES["control"](), d / "c.onnx")
    rng = np.random.default_rng(0)
    for _name, (make, expected) in CALIB_CASES.items():
        x = rng.uniform(0, 1, (8, 3, 8, 8)).astype(np.float32)
        np.savez(d / "bad_calib.npz", x=make(x))
        kind = _cli(
            [
                "quantize",
                str(d / "c.onnx"),
                "--calib",
                str(d / "bad_calib.npz"),
                "-o",
                str(d / "o.q4"),
                "--force",
                "-q",
            ]
        )[0]
        c["silent wrong" if kind == "accepted" and expected == "clean" else kind] += 1
    save_q4(every_kind_model(), d / "m.q4")
    generate(every_kind_model(), d / "gen", "net")
    tiny_data(d / "good.npz", n=8)
    x = np.load(d / "good.npz")["x"]
    for _name, y in LABEL_CASES.items():
        np.savez(d / "bad.npz", x=x, y=y)
        for argv in (
            ["verify", str(d / "m.q4"), str(d / "gen"), "--data", str(d / "bad.npz")],
            ["report", str(d / "m.q4"), "--data", str(d / "bad.npz"), "-o", str(d / f"rep_{len(c)}")],
        ):
            kind = _cli(argv)[0]
            c["silent wrong" if kind == "accepted" else kind] += 1
    for extra in (["--count", "-1"], ["--count", "0"], ["--start", "-3"], ["--start", "8"]):
        kind = _cli(["verify", str(d / "m.q4"), str(d / "gen"), "--data", str(d / "good.npz"), *extra])[0]
        c["silent wrong" if kind == "accepted" else kind] += 1
    return c


def output_paths(d: Path) -> Counter:
    """4a: output-path faults; a user file changed without --force counts as data lost."""
    from hostile import every_kind_model, tiny_data

    from q4sdk.codegen.render import generate
    from q4sdk.ir.q4file import save_q4

    save_q4(every_kind_model(), d / "m.q4")
    tiny_data(d / "data.npz")
    generate(every_kind_model(), d / "gen", "net")
    c = Counter()
    f = d / "afile"

    def user_file_case(argv, path: Path, expect_error=True):
        path.write_text("mine") if not path.is_dir() else None
        before = path.read_text() if path.is_file() else None
        kind = _cli(argv)[0]
        if before is not None and path.is_file() and path.read_text() != before:
            kind = "data lost"
        elif kind == "accepted" and expect_error:
            kind = "silent wrong"
        c[kind] += 1

    q4 = str(d / "m.q4")
    user_file_case(["generate", q4, "-o", str(f)], f)
    user_file_case(["generate", q4, "-o", str(f), "--force"], f)
    c[_cli(["generate", q4, "-o", str(f / "sub")])[0]] += 1
    c[_cli(["generate", q4, "-o", "/proc/q4sdk_out"])[0]] += 1
    out = d / "odd"
    out.mkdir()
    (out / "q4_runtime").write_text("x")
    user_file_case(["generate", q4, "-o", str(out), "--name", "net"], out / "q4_runtime")
    c[_cli(["generate", q4, "-o", str(out), "--name", "net", "--force"])[0]] += 1
    user_file_case(
        ["verify", q4, str(d / "gen"), "--data", str(d / "data.npz"), "--json", str(d / "r.json")],
        d / "r.json",
    )
    c[
        _cli(
            ["verify", q4, str(d / "gen"), "--data", str(d / "data.npz"), "--json", str(d / "no" / "r.json")]
        )[0]
    ] += 1
    c[_cli(["verify", q4, str(d / "gen"), "--data", str(d / "data.npz"), "--json", str(d)])[0]] += 1
    rep = d / "rep"
    _cli(["report", q4, "--data", str(d / "data.npz"), "-o", str(rep)])
    user_file_case(["report", q4, "--data", str(d / "data.npz"), "-o", str(rep)], rep / "report.md")
    c[_cli(["quantize", "x.onnx", "--calib", str(d / "data.npz"), "-o", str(f)])[0]] += 1
    return c


def kills(d: Path, n_sub: int) -> Counter:
    """4b: generate --force killed before every file-system step (forked child) and at random
    points (subprocesses); a target that is not the old or the new complete tree is data lost."""
    from hostile import every_kind_model, write_killed_at
    from test_fuzz_output import tree_hash

    from q4sdk.codegen import output_tree
    from q4sdk.codegen.render import generate, render
    from q4sdk.ir.q4file import save_q4

    a, b = every_kind_model(), every_kind_model()
    b.name, b.ops[0].arrays["bias"][:] = "other", 1
    save_q4(a, d / "a.q4")
    save_q4(b, d / "b.q4")
    files = {"a": render(a, "net")[0], "b": render(b, "net")[0]}
    out = d / "out"
    generate(b, out, "net")
    states = {tree_hash(out): "b"}
    output_tree.write_files(files["a"], out, True)
    states[tree_hash(out)] = "a"
    c = Counter()
    k, done = 0, False
    while not done:
        cur = states[tree_hash(out)]
        nxt = "a" if cur == "b" else "b"
        pid = os.fork()
        if pid == 0:
            try:
                write_killed_at(k, files[nxt], out)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        done = os.WIFEXITED(status)
        c["accepted" if tree_hash(out) in states else "data lost"] += 1
        k += 1
    rng = np.random.default_rng(3)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "q4sdk",
            "generate",
            str(d / "b.q4"),
            "-o",
            str(out),
            "--name",
            "net",
            "--force",
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    t_full = time.perf_counter() - t0
    for _i in range(n_sub):
        cur = states[tree_hash(out)]
        src = d / ("b.q4" if cur == "a" else "a.q4")
        proc = subprocess.Popen(
            [sys.executable, "-m", "q4sdk", "generate", str(src), "-o", str(out), "--name", "net", "--force"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(float(t_full * rng.uniform(0.5, 1.1)))
        proc.kill()
        proc.wait()
        c["accepted" if tree_hash(out) in states else "data lost"] += 1
    return c


def determinism(d: Path) -> Counter:
    """6: generate the same .q4 twice (plain and packed) and compare the trees."""
    from hostile import every_kind_model
    from test_fuzz_c import _w4a4_model
    from test_fuzz_output import tree_hash

    from q4sdk.codegen.render import generate

    c = Counter()
    for i, (model, packed) in enumerate([(every_kind_model(), False), (_w4a4_model(), True)]):
        generate(model, d / f"g{i}a", "net", pack_activations=packed)
        generate(model, d / f"g{i}b", "net", pack_activations=packed)
        c["accepted" if tree_hash(d / f"g{i}a") == tree_hash(d / f"g{i}b") else "silent wrong"] += 1
    return c


CLASSES = [
    ("1a corrupt .q4 (truncations, bit flips) x 4 commands", lambda d, a: corrupt_bytes(d, a.mutations)),
    (
        "1b hostile checksum-valid manifests (D4, D6, D7, D9 reproducers x 4 commands; random edits x "
        "inspect/generate, generated C compiled)",
        lambda d, a: hostile_manifests(d, a.random_edits),
    ),
    (
        "1c/1d/5 generated C under ASan+UBSan on extreme inputs vs the oracle (random extreme models, "
        "every-kind model, W4A4 packed and unpacked with out-of-range codes)",
        lambda d, a: sanitizer_models(d, range(100, 100 + a.sanitizer_models)),
    ),
    ("2 bad ONNX into quantize", lambda d, a: onnx_inputs(d)),
    ("3 bad calibration data (quantize) and test data (verify, report)", lambda d, a: data_inputs(d)),
    ("4a output paths", lambda d, a: output_paths(d)),
    ("4b kill -9 during generate --force (every step; random points)", lambda d, a: kills(d, a.kills)),
    ("6 determinism of generate", lambda d, a: determinism(d)),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mutations", type=int, default=60)
    ap.add_argument("--random-edits", type=int, default=150)
    ap.add_argument("--sanitizer-models", type=int, default=8)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("-o", "--out-dir", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    rows = []
    t_start = time.perf_counter()
    for label, fn in CLASSES:
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            if label.startswith(("1a", "1b")):
                from hostile import every_kind_model, tiny_data

                from q4sdk.ir.q4file import save_q4

                save_q4(every_kind_model(), d / "m.q4")
                tiny_data(d / "data.npz")
            counts = fn(d, args)
        rows.append(
            {
                "class": label,
                "runs": sum(counts.values()),
                **{k: counts.get(k, 0) for k in COLUMNS},
                "seconds": round(time.perf_counter() - t, 1),
            }
        )
        print(f"{label[:60]:<60} {dict(counts)}", file=sys.stderr)
    total = {k: sum(r[k] for r in rows) for k in ("runs", *COLUMNS)}
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "seconds": round(time.perf_counter() - t_start, 1),
        "classes": rows,
        "total": total,
        "settings": vars(args),
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability_census.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Reliability census (re-run)",
        "",
        f"`python benchmarks/reliability_census.py` on {result['machine']}; {result['seconds']} s.",
        "",
        "| class | runs | clean `error:` (exit 2) | internal error (exit 3) | crashes / hangs | "
        "silent wrong | data lost / half-written | accepted (correct) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows + [{"class": "**total**", **total}]:
        lines.append(f"| {r['class']} | {r['runs']} | " + " | ".join(str(r[k]) for k in COLUMNS) + " |")
    (out / "reliability_census.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
