"""Writing a user's file all or nothing: the one atomic file write the package uses."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from q4sdk.errors import Q4Error


def write_atomic(path: str | Path, content: bytes | str) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same folder and one rename, so
    ``path`` is always either its old content or the new one; Q4Error naming ``path`` when it cannot
    be written (nothing is left behind)."""
    p = Path(path)
    data = content.encode() if isinstance(content, str) else content
    tmp = p.parent / f".{p.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise Q4Error(f"{p}: cannot write ({e.strerror or type(e).__name__})") from None
        raise
