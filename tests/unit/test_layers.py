"""The package layers hold: each package imports only the packages below it, and no module of ours is part of an
import cycle.

Layers (lowest first): ``models`` (science; imports nothing of ours) < ``core`` (settings, database, crud,
storage, queue, job states) < ``app`` (FastAPI) and ``workers`` (Celery), side by side < ``cli`` (the genmix
command, which may import anything of ours).

Every ``.py`` file of those packages is read with ``ast`` (nothing is imported): ``import x.y`` and
``from x import y`` at module level, in class bodies and inside functions, with relative imports resolved
against the importing module's package. ``from pkg import name`` points at the module ``pkg.name`` when that is
a module of ours, else at ``pkg``. Imports made from strings (``importlib.import_module``) are not seen.

- Layering counts every import, wherever it stands (a function-level import is still a dependency).
- Cycles are found between modules (not packages) on the imports that run when a module is imported: module
  level and class bodies, not function bodies, not ``if TYPE_CHECKING:`` blocks. A package's
  ``__init__`` counts only where it is named, not when a submodule is imported through it.
- A function-level import that closes a cycle (its target reaches the importing module through module-level
  imports) is reported by its own test: it works at run time, but only because it is deferred.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "core", "app", "workers", "cli")
ALLOWED: dict[str, set[str]] = {
    "models": {"models"},
    "core": {"core", "models"},
    "app": {"app", "core", "models"},
    "workers": {"workers", "core", "models"},
    "cli": set(PACKAGES),
}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported module of ours, dotted
    path: str  # file of the import, relative to the repository
    line: int
    deferred: bool  # inside a function (runs when called, not when the module is imported)
    typing_only: bool  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        where = " (in a function)" if self.deferred else " (TYPE_CHECKING)" if self.typing_only else ""
        return f"{self.path}:{self.line}  {self.source} -> {self.target}{where}"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Every module of ours under ``root``, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found[_module_name(path, root)] = path
    return found


def _ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _known(name: str, known: dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a module of ours (``import a.b.c`` where c is a function: a.b)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return name  # a module of ours that does not exist: still an edge, so a bad layer shows


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, path: Path, root: Path) -> None:
        self.module = module
        self.path = str(path.relative_to(root))
        self.known = modules(root)
        is_package = path.name == "__init__.py"
        self.package = module if is_package else module.rpartition(".")[0]
        self.functions = 0
        self.typing = 0
        self.edges: list[Edge] = []

    def _add(self, target: str, node: ast.AST) -> None:
        if _ours(target):
            known = _known(target, self.known)
            self.edges.append(Edge(self.module, known, self.path, node.lineno, self.functions > 0, self.typing > 0))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.functions += 1
        self.generic_visit(node)
        self.functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        typing = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        self.visit(test)
        self.typing += typing
        for child in node.body:
            self.visit(child)
        self.typing -= typing
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base_parts = self.package.split(".")
            base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if not _ours(base):
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in self.known else base, node)


@cache
def edges(root: Path = REPO_ROOT) -> tuple[Edge, ...]:
    """Every import of a module of ours by a module of ours (once per statement and target)."""
    found: list[Edge] = []
    for name, path in modules(root).items():
        visitor = _Imports(name, path, root)
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        found += [e for e in visitor.edges if e.target != e.source]
    return tuple(dict.fromkeys(found))


def _layer(module: str) -> str:
    return module.split(".")[0]


def _runtime_graph(found: tuple[Edge, ...]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in found:
        if not edge.deferred and not edge.typing_only:
            graph[edge.source].add(edge.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def test_the_walker_sees_our_imports() -> None:
    """Guards the other tests against passing on an empty graph."""
    names = modules()
    assert set(PACKAGES) | {"cli.main"} <= set(names)  # every package, and the genmix command
    found = edges()
    assert len(found) > 50
    assert any(e.source == "cli.main" and e.target.startswith("cli.") for e in found)
    assert any(e.deferred for e in found)  # function-level imports are read too


def layer_violations(found: tuple[Edge, ...]) -> list[Edge]:
    return sorted((e for e in found if _layer(e.target) not in ALLOWED[_layer(e.source)]), key=str)


def cycles(found: tuple[Edge, ...]) -> list[tuple[list[str], list[Edge]]]:
    """Each cycle of module-level imports: its modules and the edges between them."""
    out = []
    for component in _cycles(_runtime_graph(found)):
        members = set(component)
        inside = [e for e in found if e.source in members and e.target in members]
        out.append((component, sorted((e for e in inside if not e.deferred and not e.typing_only), key=str)))
    return out


def hidden_cycles(found: tuple[Edge, ...]) -> list[Edge]:
    """Function-level imports whose target imports the importing module back through module-level imports."""
    graph = _runtime_graph(found)
    return sorted((e for e in found if e.deferred and _reaches(graph, e.target, e.source)), key=str)


def test_packages_import_only_lower_layers() -> None:
    bad = layer_violations(edges())
    rules = "; ".join(f"{layer} may import {', '.join(sorted(allowed))}" for layer, allowed in ALLOWED.items())
    assert not bad, f"{len(bad)} import(s) across the layers ({rules}):\n" + "\n".join(map(str, bad))


def test_no_import_cycles() -> None:
    found = cycles(edges())
    lines = []
    for component, inside in found:
        lines.append(" <-> ".join(component))
        lines += [f"    {e}" for e in inside]
    assert not found, f"{len(found)} import cycle(s) among module-level imports:\n" + "\n".join(lines)


def test_no_cycle_is_hidden_in_a_function() -> None:
    """A function-level import whose target imports the caller back (at module level) is a deferred cycle."""
    hidden = hidden_cycles(edges())
    assert not hidden, f"{len(hidden)} function-level import(s) that close a cycle:\n" + "\n".join(map(str, hidden))


SAMPLE_TREE = {
    "models/__init__.py": "",
    "models/a.py": "from core import settings\nfrom . import b\n",  # upward; and a cycle with b
    "models/b.py": "import models.a\n",
    "core/__init__.py": "",
    "core/settings.py": "def load():\n    from core import late\n",  # closes a cycle, deferred
    "core/late.py": "from core.settings import load\nfrom models.a import thing\n",
    "app/__init__.py": "",
    "app/x.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workers import y\n",  # sideways
    "workers/__init__.py": "",
    "workers/y.py": "",
    "core/db/__init__.py": "",
    "core/db/orm.py": "from ..late import load\nfrom . import orm\n",
    "cli/__init__.py": "",
    "cli/main.py": "import app.x, workers.y\nfrom cli import main as again\n",
}


def test_the_checks_find_what_they_are_for(tmp_path: Path) -> None:
    """On a small made-up tree: upward and sideways imports, a module-level cycle, a deferred one."""
    for name, text in SAMPLE_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = edges(tmp_path)
    assert [str(e) for e in layer_violations(found)] == [
        "app/x.py:3  app.x -> workers.y (TYPE_CHECKING)",
        "models/a.py:1  models.a -> core.settings",
    ]
    assert [(component, [str(e) for e in inside]) for component, inside in cycles(found)] == [
        (["models.a", "models.b"], ["models/a.py:2  models.a -> models.b", "models/b.py:1  models.b -> models.a"])
    ]
    assert [str(e) for e in hidden_cycles(found)] == ["core/settings.py:2  core.settings -> core.late (in a function)"]
    assert "core/db/orm.py:1  core.db.orm -> core.late" in map(str, found)  # relative, two levels up
