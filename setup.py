"""Build step only (the metadata lives in pyproject.toml): the wheel carries the C runtime, the
Jinja2 templates and the board folders inside the package, in ``q4sdk/_resources/``, where
``q4sdk.resources`` looks first. A source checkout and an editable install use the top-level
folders instead, so nothing is copied for them."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
RESOURCE_TREES = ("runtime_c", "templates", "boards")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", "*.so", "*.elf", "build")


class BuildPyWithResources(build_py):
    """``build_py`` that also copies ``RESOURCE_TREES`` to ``<build_lib>/q4sdk/_resources/``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "q4sdk" / "_resources"
        if target.exists():
            shutil.rmtree(target)
        for tree in RESOURCE_TREES:
            source = ROOT / tree
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing (the wheel needs it)")
            shutil.copytree(source, target / tree, ignore=IGNORED)


setup(cmdclass={"build_py": BuildPyWithResources})
