"""Where q4sdk's non-Python files are: the C runtime, the Jinja2 templates and the board folders.

In a source checkout they are the top-level folders ``runtime_c/``, ``templates/`` and ``boards/``;
a wheel carries copies of them inside the package, in ``q4sdk/_resources/`` (``setup.py`` puts them
there when it builds). Every module finds them here, never relative to its own file.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_PACKAGED = _PACKAGE / "_resources"


def resource_root() -> Path:
    """The folder holding ``runtime_c/``, ``templates/`` and ``boards/``."""
    return _PACKAGED if (_PACKAGED / "runtime_c").is_dir() else _PACKAGE.parent


ROOT = resource_root()
RUNTIME_DIR = ROOT / "runtime_c"
TEMPLATE_DIR = ROOT / "templates"
BOARDS_DIR = ROOT / "boards"
