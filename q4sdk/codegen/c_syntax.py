"""C spelling of names, strings, comments, numbers and constant tables for the generated sources."""

from __future__ import annotations

import re

import numpy as np

C_KEYWORDS = frozenset(
    """
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Bool _Complex _Imaginary bool true false asm
""".split()
)

INT32_MIN = -(1 << 31)


def c_identifier(text: str) -> str:
    """A C identifier derived from ``text``: invalid characters become '_', no leading digit or
    underscore (reserved), never a keyword."""
    s = re.sub(r"[^0-9A-Za-z_]", "_", text)
    s = re.sub(r"_+", "_", s).strip("_")
    if not s or s[0].isdigit():
        s = "n_" + s if s else "n"
    if s in C_KEYWORDS:
        s += "_"
    return s


def unique_identifiers(names: list[str]) -> list[str]:
    """Sanitised identifiers for ``names``, made distinct (case-insensitively) with suffixes."""
    used: set[str] = set()
    out = []
    for name in names:
        base = c_identifier(name)
        ident, k = base, 2
        while ident.lower() in used:
            ident, k = f"{base}_{k}", k + 1
        used.add(ident.lower())
        out.append(ident)
    return out


def c_string(text: str) -> str:
    """A C string literal holding the UTF-8 bytes of ``text`` (octal escapes for anything unusual)."""
    parts = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if 32 <= b < 127 and ch not in '"\\?':
            parts.append(ch)
        else:
            parts.append(f"\\{b:03o}")
    return '"' + "".join(parts) + '"'


def c_comment(text: str) -> str:
    """Text safe inside a /* */ comment on one line."""
    return re.sub(r"[^ -~]", "?", text).replace("*/", "*_/").replace("/*", "/_*")


def c_float(value: float) -> str:
    """The float32 nearest ``value`` as an exact C99 hexadecimal float literal."""
    h = float(np.float32(value)).hex()  # e.g. '0x1.99999a0000000p-4'
    mant, exp = h.split("p")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    return f"{mant}p{exp}f"


def c_int32(v: int) -> str:
    return "(-2147483647 - 1)" if v == INT32_MIN else str(v)


def c_table(symbol: str, ctype: str, values: np.ndarray) -> dict:
    """A constant table for ``weights.c.j2``: ``uint8_t`` bytes (16 a line, hex), ``int8_t``
    values (16 a line) or ``int32_t`` values (8 a line); ``bytes`` is its size."""
    values = [int(v) for v in np.asarray(values).ravel()]
    if ctype == "uint8_t":
        items, per_line = [f"0x{v:02x}" for v in values], 16
    elif ctype == "int8_t":
        items, per_line = [str(v) for v in values], 16
    else:
        items, per_line = [c_int32(v) for v in values], 8
    lines = [", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]
    return {
        "symbol": symbol,
        "ctype": ctype,
        "length": len(values),
        "lines": lines,
        "bytes": len(values) * (4 if ctype == "int32_t" else 1),
    }
