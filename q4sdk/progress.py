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

    def elapsed(self) -> float:
        """Seconds since this progress printer was made."""
        return time.time() - self.t0

    def update(self, i: int, total: int, what: str = "") -> None:
        """Report item ``i`` (0-based) of ``total``; with an ETA once a few seconds have passed,
        assuming the remaining items take as long as the finished ones on average."""
        if not self.enabled:
            return
        now = time.time()
        if getattr(self, "_phase", None) is None or self._phase[1] != total or i < self._phase[2]:
            self._phase = [now, total, i]  # a new phase (another total, or counting from the start)
        t0, _, i0 = self._phase
        self._phase[2] = i
        t = now - t0
        eta = f", ETA {t / (i - i0) * (total - i):.0f}s" if i > i0 and t > 2.0 else ""
        msg = f"{self.label} [{i + 1}/{total}{eta}] {what}"
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
