"""Progress reporting on stderr for work that takes more than a second or two."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str = "", enabled: bool = True, stream=None):
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.time()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, i: int, total: int, what: str = "") -> None:
        if not self.enabled:
            return
        msg = f"{self.label} [{i + 1}/{total}] {what}"
        if self._tty:
            self.stream.write("\r\x1b[K" + msg)
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()

    def done(self, what: str = "") -> None:
        if not self.enabled:
            return
        end = "\r\x1b[K" if self._tty else ""
        self.stream.write(f"{end}{self.label} {what} ({time.time() - self.t0:.1f}s)\n")
        self.stream.flush()
