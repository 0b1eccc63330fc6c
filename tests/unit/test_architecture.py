"""Architecture gates, read from the source with `ast`: no import cycle in stationmon/, nothing in
stationmon/domain/ imports stationmon.config, no function longer than 60 lines.

Every import counts, wherever it sits (module level, inside a function, under `if TYPE_CHECKING`):
an import hidden in a function still ties the two modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "stationmon"
ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Import:
    """One import statement's target module, and where it is."""

    source: str  # the importing module
    target: str  # the imported module (a stationmon module)
    path: Path
    line: int


def module_name(path: Path, root: Path) -> str:
    """`stationmon/domain/mbap.py` -> `stationmon.domain.mbap`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an `from ... import` names (relative imports resolved against `module`)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, modules: dict[str, Path], package: str = PACKAGE) -> Iterator[Import]:
    """The package modules that `module` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(node, module, path.name == "__init__.py")
            # `from pkg import name`: the submodule pkg.name when it is one, else pkg itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target == package or target.startswith(package + "."):
                yield Import(module, target, path, node.lineno)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for imp in imports_of(module, path, modules):
            if imp.target in modules:
                graph[module].add(imp.target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted; singletons only with a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
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
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def a_cycle(graph: dict[str, set[str]], component: list[str], start: str) -> list[str]:
    """The shortest closed path from `start` back to itself inside its strongly connected component."""
    members = set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


@dataclass(frozen=True)
class LongFunction:
    """A function or method whose body runs past the limit."""

    path: str
    line: int
    name: str
    length: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.name}:{self.length}"


def long_functions(path: str, source: str, limit: int = MAX_FUNCTION_LINES) -> Iterator[LongFunction]:
    """Every def in `source` whose body (first statement, docstring included, to the last line) exceeds `limit`."""

    def visit(node: ast.AST, prefix: str) -> Iterator[LongFunction]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                length = (child.body[-1].end_lineno or child.body[-1].lineno) - child.body[0].lineno + 1
                if length > limit:
                    yield LongFunction(path, child.lineno, name, length)
                yield from visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, prefix + child.name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(ast.parse(source, filename=path), "")


# ----------------------------------------------------------------------------------------------------
# The gates


def test_no_import_cycle() -> None:
    graph = import_graph(package_modules())
    # every module of a tangle starts one shortest cycle, so each edge to cut shows up
    cycles = sorted({" -> ".join(a_cycle(graph, c, m)) for c in strongly_connected(graph) for m in c})
    assert not cycles, "import cycles in stationmon/:\n" + "\n".join(cycles)


def test_domain_does_not_import_config() -> None:
    modules = package_modules()
    found = [
        f"{imp.path.relative_to(ROOT)}:{imp.line}: imports {imp.target}"
        for module, path in modules.items()
        if module.startswith(f"{PACKAGE}.domain")
        for imp in imports_of(module, path, modules)
        if imp.target == f"{PACKAGE}.config" or imp.target.startswith(f"{PACKAGE}.config.")
    ]
    assert not found, "stationmon/domain/ imports stationmon.config:\n" + "\n".join(found)


def test_no_function_longer_than_60_lines() -> None:
    found = [
        str(f)
        for path in package_modules().values()
        for f in long_functions(str(path.relative_to(ROOT)), path.read_text())
    ]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines (file:line:name:length):\n" + "\n".join(found)


# ----------------------------------------------------------------------------------------------------
# The gates can fail


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"a"}}
    components = strongly_connected(graph)
    assert components == [["a", "b", "c"], ["e"]]
    assert a_cycle(graph, ["a", "b", "c"], "a") == ["a", "b", "c", "a"]
    assert a_cycle(graph, ["a", "b", "c"], "b") == ["b", "c", "a", "b"]
    assert a_cycle(graph, ["e"], "e") == ["e", "e"]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_imports_are_read_everywhere(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "domain").mkdir(parents=True)
    (pkg / "config").mkdir()
    for name in ("__init__.py", "domain/__init__.py", "config/__init__.py", "config/schema.py", "other.py"):
        (pkg / name).write_text("")
    (pkg / "domain" / "x.py").write_text(
        "from __future__ import annotations\n"
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.config import schema\n"
        "def f() -> None:\n    from .. import other\n    import pkg.config\n"
        "from ..config.schema import Thing\n"
    )
    modules = package_modules(tmp_path, "pkg")
    found = {(i.target, i.line) for i in imports_of("pkg.domain.x", pkg / "domain" / "x.py", modules, "pkg")}
    assert found == {("pkg.config.schema", 5), ("pkg.other", 7), ("pkg.config", 8), ("pkg.config.schema", 9)}


def test_long_functions_are_measured_by_their_body() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    source = (
        f"@decorator\ndef fits(\n    a: int,\n    b: int,\n) -> None:\n{body}\n"
        f"class C:\n    async def too_long(self) -> None:\n        '''doc'''\n{body.replace('    ', '        ')}"
    )
    found = list(long_functions("x.py", source))
    assert [(f.name, f.line, f.length) for f in found] == [("C.too_long", 68, 61)]
    assert str(found[0]) == "x.py:68:C.too_long:61"
