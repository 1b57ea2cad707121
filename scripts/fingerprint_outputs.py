"""Fingerprint q4sdk's outputs: .q4 files and generated C for a fixed set of inputs.

Used to prove that a refactoring changes no output byte: run it before and after and diff the
two JSON files. It drives the command line only (the interface that does not move), quantizes
ResNet-8 from ../shared with several recipes and generates C with every kernel choice.

    python scripts/fingerprint_outputs.py -o before.json     # needs ../shared and the toolchains
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# meta fields that hold the wall clock or the machine's paths: not part of the model
VOLATILE_META = ("quantize_seconds", "source_path")

CONFIGS = {
    "w4a8_default": ["--activations", "int8"],
    "w4a4_unsigned": ["--activations", "int4", "--unsigned-activations"],
    "w4a4_methods": [
        "--activations",
        "int4",
        "--unsigned-activations",
        "--bias-correction",
        "--cle",
        "--residual-activations",
        "@last_input",
        "--activation-range",
        "aciq_laplace",
    ],
    "w4a4_paper": ["--activations", "int4", "--recipe", "paper"],
}
GENERATE = {
    "portable": [],
    "packed": ["--pack-activations"],
    "m4_opt": ["--board", "mps2-an386", "--kernels", "optimised"],
    "m55_opt": ["--board", "mps3-an547", "--kernels", "optimised"],
}


def q4_fingerprint(path: Path) -> str:
    """sha256 of a .q4 file's manifest (without the volatile meta fields) and data section."""
    raw = path.read_bytes()
    _, _, mlen, dlen = struct.unpack_from("<8sIQQ", raw)
    manifest = json.loads(raw[28 : 28 + mlen])
    for key in VOLATILE_META:
        manifest["meta"].pop(key, None)
    start = -(-(28 + mlen) // 64) * 64
    h = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode())
    h.update(raw[start : start + dlen])
    return h.hexdigest()


def tree_fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def q4sdk(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "q4sdk", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--calib-samples", default="64")
    args = ap.parse_args()
    model = SHARED / "models" / "resnet8_cifar10.onnx"
    calib = SHARED / "data" / "cifar10_calib.npz"
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cfg, flags in CONFIGS.items():
            q4 = Path(tmp) / f"{cfg}.q4"
            q4sdk(
                "quantize",
                str(model),
                "--calib",
                str(calib),
                "--nhwc",
                "-o",
                str(q4),
                "-q",
                "--calib-samples",
                args.calib_samples,
                *flags,
            )
            result[f"{cfg}.q4"] = q4_fingerprint(q4)
            for gen, gflags in GENERATE.items():
                if gen == "packed" and "int4" not in flags:
                    continue
                out = Path(tmp) / f"{cfg}_{gen}"
                q4sdk("generate", str(q4), "-o", str(out), "--name", "net", *gflags)
                result[f"{cfg}/{gen}"] = tree_fingerprint(out)
            print(f"{cfg}: done", file=sys.stderr)
    Path(args.output).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
