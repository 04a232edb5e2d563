"""The library's import graph has no cycle, counting every import: module level, inside functions and under
``TYPE_CHECKING`` (a cycle that lazy imports hide at run time is still a cycle in the design).

``from package import name`` is an edge to the submodule ``package.name`` when there is one, else to ``package``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "LesionDetectLib"
ROOT = PACKAGE.name


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of ``package`` (a package by its ``__init__.py``)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> dict[str, int]:
    """The modules of ``known`` that ``module``'s syntax ``tree`` imports anywhere, each with its first line."""
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in known]
            targets = submodules if len(submodules) == len(node.names) else [*submodules, source]
        for target in targets:
            if target in known and target != module:
                found.setdefault(target, node.lineno)
    return found


def import_graph(package: Path) -> dict[str, dict[str, int]]:
    """Module → {imported module: line} for every module of ``package``."""
    modules = module_files(package)
    return {
        module: imported_modules(module, path.name == "__init__.py", ast.parse(path.read_text(encoding="utf-8")),
                                 set(modules))
        for module, path in modules.items()
    }


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def describe(component: list[str], graph: dict[str, dict[str, int]], package: Path) -> str:
    """A cycle and the imports that make it, as ``module (file:line) → module``."""
    files = module_files(package)
    edges = [
        f"  {module} ({files[module].relative_to(package.parent)}:{line}) → {target}"
        for module in component for target, line in sorted(graph[module].items()) if target in component
    ]
    return " ↔ ".join(component) + "\n" + "\n".join(edges)


def test_the_library_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and all(module.startswith(ROOT) for module in graph)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(component, graph, PACKAGE) for component in found)


def test_imports_inside_functions_and_under_type_checking_are_edges(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .. import b\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .b import Thing\n"
        "def later():\n    from pkg.sub import c\n"
    )
    (package / "b.py").write_text("import pkg.a\nimport os\n")
    (package / "sub" / "c.py").write_text("def f():\n    from ..a import later\n")
    graph = import_graph(package)
    assert graph == {
        "pkg": {}, "pkg.a": {"pkg.b": 3, "pkg.sub.c": 5}, "pkg.b": {"pkg.a": 1},
        "pkg.sub": {"pkg.b": 1}, "pkg.sub.c": {"pkg.a": 2},
    }
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert cycles({"x": {"y": 1}, "y": {}}) == []
