"""The package's layout rules that import-linter cannot see (it runs too, from .ci/run).

* No import inside a function body, anywhere in ``gearpy/``: everything is imported at start-up,
  so a reinstall under a running process cannot break it half-way (it once made every admin
  command fail with ModuleNotFoundError), and every dependency is visible to the contracts.
* No import cycle between gearpy's modules, counting every import in every module.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gearpy"

#: The one place allowed to import inside a function, and why.
LAZY_BY_DESIGN = {
    # PEP 562 module __getattr__: ``python -m gearpy.worker`` imports this package before its
    # __main__ can monkey-patch, and gevent must patch before the runtime imports socket and ssl.
    # The names are imported at module level under TYPE_CHECKING too, so the contracts see them.
    "gearpy/worker/__init__.py",
}

#: Modules whose imports in functions are moved on the CLI-kit branch, not merged yet: delete each
#: entry once it is clean.
PENDING_ELSEWHERE = {
    "gearpy/client/cli.py",
    "gearpy/worker/cli.py",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


class _FunctionImports(ast.NodeVisitor):
    """Collects imports (statements, and ``importlib.import_module``/``__import__`` of gearpy
    modules) found inside function bodies."""

    def __init__(self) -> None:
        self.depth = 0
        self.found: list[tuple[int, str]] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        if self.depth:
            self.found.append((node.lineno, "import " + ", ".join(a.name for a in node.names)))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if self.depth:
            self.found.append((node.lineno, f"from {'.' * node.level}{node.module or ''} import ..."))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            text = ""
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                text = first.value
            elif isinstance(first, ast.JoinedStr) and first.values:
                head = first.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    text = head.value
            if text.startswith("gearpy"):
                self.found.append((node.lineno, f"{name}({text!r}...)"))
        self.generic_visit(node)


def test_no_module_imports_inside_a_function() -> None:
    offenders = []
    for path in MODULES.values():
        where = str(path.relative_to(PACKAGE.parent))
        if where in LAZY_BY_DESIGN:
            continue
        visitor = _FunctionImports()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if where in PENDING_ELSEWHERE:
            continue
        offenders += [f"{where}:{line}: {what}" for line, what in visitor.found]
    assert not offenders, "imports inside functions (import at module level):\n" + "\n".join(offenders)


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str) -> set[str]:
    """The gearpy modules ``name`` imports (a ``from pkg import sub`` names the submodule)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, node)
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.add(sub if sub in MODULES else module)
    return {t for t in targets if t in MODULES and t != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_finder_sees_imports_in_functions() -> None:
    code = "import a\ndef f():\n    import b\n    from . import c\nclass K:\n    def m(self):\n"
    code += "        importlib.import_module('gearpy.x')\n        importlib.import_module(f'gearpy.{n}')\n"
    code += "        importlib.import_module(user_module)\n"
    visitor = _FunctionImports()
    visitor.visit(ast.parse(code))
    assert [line for line, _ in visitor.found] == [3, 4, 7, 8]


def test_lazy_by_design_is_still_needed() -> None:
    for where in LAZY_BY_DESIGN:
        visitor = _FunctionImports()
        visitor.visit(ast.parse((PACKAGE.parent / where).read_text(encoding="utf-8")))
        assert visitor.found, f"{where} no longer imports in a function: remove it from LAZY_BY_DESIGN"


def test_no_import_cycles() -> None:
    graph = {name: _imports(name) for name in MODULES}
    assert graph["gearpy.server.net"] >= {"gearpy.server.core", "gearpy.server.tls"}  # the graph is real
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
