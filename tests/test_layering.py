"""Lower layers never import higher ones: every import in q4sdk (function-level ones included,
``if TYPE_CHECKING:`` blocks excepted) stays within what its layer may use."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "q4sdk"
BASE = {"errors", "files", "progress", "resources"}
ALLOWED = {  # layer -> the layers it may import (besides itself)
    **{b: BASE for b in BASE},
    "ir": BASE,
    "frontend": BASE | {"ir"},
    "ptq": BASE | {"ir"},
    "codegen": BASE | {"ir"},
    "targets": BASE | {"ir", "codegen"},
    "check": BASE | {"ir", "frontend", "ptq", "codegen", "targets"},
    "api": BASE | {"ir", "frontend", "ptq", "codegen", "targets", "check"},
    "__init__": {"errors", "api"},
    "__main__": {"cli"},
    "cli": BASE | {"ir", "frontend", "ptq", "codegen", "targets", "check", "api"},
}


def _imports(tree: ast.AST):
    """Yield (line, imported module) for every import, skipping ``if TYPE_CHECKING:`` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (i for n in node.orelse for i in _imports(ast.Module([n], [])))
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from ((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        yield from _imports(node)


def test_every_import_respects_the_layers():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for line, name in _imports(ast.parse(path.read_text(), str(path))):
            parts = name.split(".")
            if (
                parts[0] == "q4sdk"
                and len(parts) > 1
                and parts[1] != layer
                and parts[1] not in ALLOWED[layer]
            ):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer}) imports {name}")
    assert not bad, "\n".join(bad)
