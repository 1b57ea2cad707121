"""Compile a generated C directory into an in-process Python extension (cffi) and run it.

The build is cached under a directory keyed by a hash of the sources and compile flags; every hash
gets its own module name, so several models can be loaded into one process. Builds go through a
temporary directory and are renamed into place, so a cache entry is either complete or absent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from q4sdk.errors import Q4Error

# -fno-wrapv undoes Python's -fwrapv: the C must not depend on wrapping signed arithmetic.
COMPILE_ARGS = (
    "-std=c99",
    "-O2",
    "-fno-wrapv",
    "-ffp-contract=off",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-DQ4_DEBUG_DUMP",
)
_CDEF = """
int {n}_run(const int8_t *input, int8_t *output);
void {n}_quantize_input(const float *x, int8_t *q);
void {n}_dequantize_output(const int8_t *q, float *y);
void {n}_set_dump(int8_t *buf);
extern const char *const {n}_dump_names[];
extern const uint32_t {n}_dump_offsets[];
extern const uint32_t {n}_dump_sizes[];
"""


def default_build_dir() -> Path:
    base = os.environ.get("Q4SDK_BUILD_DIR")
    if base:
        return Path(base)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "q4sdk" / "cbuild"


def _model_name(gen_dir: Path) -> str:
    names = sorted(p.name[: -len("_weights.c")] for p in gen_dir.glob("*_weights.c"))
    if len(names) != 1:
        raise Q4Error(f"'{gen_dir}': expected one generated model (<name>_weights.c), found {names}")
    return names[0]


def _header_ints(header: Path) -> dict[str, int]:
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^#define (\w+) (-?\d+)\s*$", header.read_text(), re.M)
    }


def _sources(gen_dir: Path, name: str) -> list[Path]:
    runtime = sorted((gen_dir / "q4_runtime").glob("*.c"))
    return [gen_dir / f"{name}.c", gen_dir / f"{name}_weights.c", *runtime]


def c_compiler() -> list[str]:
    """The C compiler command: $CC, else the one Python was built with, else cc."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def _compile_objects(sources: list[Path], gen_dir: Path, out_dir: Path, args: list[str]) -> list[Path]:
    """Compile our sources with the strict flags (in parallel), apart from cffi's glue code."""

    def one(src: Path) -> Path:
        obj = out_dir / (src.relative_to(gen_dir).as_posix().replace("/", "__") + ".o")
        cmd = [*c_compiler(), *args, "-fPIC", "-I", str(gen_dir), "-c", str(src), "-o", str(obj)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise Q4Error(f"'{src}': C compilation failed:\n{res.stderr.strip()}")
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(one, sources))


def build(gen_dir, build_dir=None):
    """Compile (or load from the cache) the generated model in ``gen_dir``; returns the module."""
    import cffi  # imported lazily: only verification needs a C compiler

    gen_dir = Path(gen_dir).resolve()
    name = _model_name(gen_dir)
    sources = _sources(gen_dir, name)
    headers = sorted(gen_dir.glob("*.h")) + sorted((gen_dir / "q4_runtime").glob("*.h"))
    args = list(COMPILE_ARGS)
    h = hashlib.sha256()
    for part in [name, *args, *c_compiler(), sys.version, cffi.__version__]:
        h.update(part.encode() + b"\0")
    for path in sources + headers:
        h.update(path.relative_to(gen_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest = h.hexdigest()[:20]
    module_name = f"_q4c_{name}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]

    root = Path(build_dir) if build_dir is not None else default_build_dir()
    target = root / digest
    if not any(p.suffix in (".so", ".pyd") for p in target.glob(f"{module_name}*")):
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=root))
        try:
            objects = _compile_objects(sources, gen_dir, tmp, args)
            ffi = cffi.FFI()
            ffi.cdef(_CDEF.format(n=name))
            ffi.set_source(
                module_name,
                f'#include "{name}.h"',
                include_dirs=[str(gen_dir)],
                extra_objects=[str(o) for o in objects],
                extra_compile_args=["-DQ4_DEBUG_DUMP"],
            )
            try:
                ffi.compile(tmpdir=str(tmp), verbose=False)
            except Exception as exc:  # distutils CompileError and friends
                raise Q4Error(f"'{gen_dir}': building the cffi module failed: {exc}") from exc
            try:
                os.replace(tmp, target)
            except OSError:  # another process finished the same build first
                pass
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    lib_path = next(
        p for p in sorted(target.iterdir()) if p.name.startswith(module_name) and p.suffix in (".so", ".pyd")
    )
    spec = importlib.util.spec_from_file_location(module_name, lib_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


class CModel:
    """A generated model compiled into this process (debug build with tensor dumps)."""

    def __init__(self, gen_dir, build_dir=None):
        self.gen_dir = Path(gen_dir)
        self.name = _model_name(self.gen_dir)
        self._mod = build(self.gen_dir, build_dir)
        self._ffi, self._lib = self._mod.ffi, self._mod.lib
        macros = _header_ints(self.gen_dir / f"{self.name}.h")
        up = self.name.upper()

        def shape(kind: str) -> tuple[int, ...]:
            return tuple(macros[f"{up}_{kind}_DIM{i}"] for i in range(macros[f"{up}_{kind}_RANK"]))

        # input_shape is what _run takes: (2, *tensor shape) for a residual input (X1, then X2)
        self.input_shape, self.output_shape = shape("INPUT"), shape("OUTPUT")
        self.input_tensor_size = macros[f"{up}_INPUT_TENSOR_SIZE"]  # floats _quantize_input reads
        self.arena_size = macros[f"{up}_ARENA_SIZE"]
        count = macros[f"{up}_DUMP_COUNT"]
        self._dump_size = macros[f"{up}_DUMP_SIZE"]
        names = getattr(self._lib, f"{self.name}_dump_names")
        offsets = getattr(self._lib, f"{self.name}_dump_offsets")
        sizes = getattr(self._lib, f"{self.name}_dump_sizes")
        self.dump_layout = [
            (self._ffi.string(names[i]).decode("utf-8"), int(offsets[i]), int(sizes[i])) for i in range(count)
        ]
        self._run = getattr(self._lib, f"{self.name}_run")
        self._set_dump = getattr(self._lib, f"{self.name}_set_dump")
        self._quantize = getattr(self._lib, f"{self.name}_quantize_input")
        self._dequantize = getattr(self._lib, f"{self.name}_dequantize_output")

    def _check_input(self, xq: np.ndarray) -> np.ndarray:
        xq = np.asarray(xq)
        if xq.dtype != np.int8 or xq.shape[1:] != self.input_shape:
            raise Q4Error(
                f"C model '{self.name}': input must be int8 [N, {self.input_shape}], "
                f"got {xq.dtype} {xq.shape}"
            )
        return np.ascontiguousarray(xq)

    def _ptr(self, arr: np.ndarray, ctype: str):
        return self._ffi.cast(ctype, self._ffi.from_buffer(arr))

    def run(self, xq: np.ndarray) -> np.ndarray:
        """int8 [N, *input_shape] -> int8 [N, *output_shape]."""
        return self._run_all(xq, dumps=False)[0]

    def run_with_dumps(self, xq: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Like ``run``, plus every tensor the C wrote: {tensor name: int8 [N, size]} (flat)."""
        return self._run_all(xq, dumps=True)

    def _run_all(self, xq, dumps: bool):
        xq = self._check_input(xq)
        n = len(xq)
        out = np.zeros((n,) + self.output_shape, np.int8)
        buf = np.zeros((n, max(self._dump_size, 1)), np.int8)
        try:
            for i in range(n):
                if dumps:
                    self._set_dump(self._ptr(buf[i], "int8_t *"))
                self._run(self._ptr(xq[i], "int8_t *"), self._ptr(out[i], "int8_t *"))
        finally:
            self._set_dump(self._ffi.NULL)
        if not dumps:
            return out, {}
        return out, {name: buf[:, off : off + size].copy() for name, off, size in self.dump_layout}

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """float32 [N, *logical input shape] -> int8 [N, *input_shape] via the generated C
        (for a residual input: X1 and X2 of every sample)."""
        x = np.ascontiguousarray(x, np.float32)
        size = self.input_tensor_size
        if x.ndim < 1 or x.size != len(x) * size:
            raise Q4Error(
                f"C model '{self.name}': float input of shape {x.shape} does not hold "
                f"{size} values per sample"
            )
        q = np.zeros((len(x),) + self.input_shape, np.int8)
        for i in range(len(x)):
            self._quantize(self._ptr(x[i], "float *"), self._ptr(q[i], "int8_t *"))
        return q

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(q, np.int8)
        y = np.zeros(q.shape, np.float32)
        for i in range(len(q)):
            self._dequantize(self._ptr(q[i], "int8_t *"), self._ptr(y[i], "float *"))
        return y
