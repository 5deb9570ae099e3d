"""No import cycle among the modules of `arbees_core` and `arbees_cli`.

A cycle makes the import order matter (a module half-initialised when the other reads it) and hides a layering
mistake behind late imports. The graph is read from the source (no module is imported): every `import` and
`from ... import`, at any depth, including those inside functions; `if TYPE_CHECKING:` blocks do not run and do
not count. Importing `a.b.c` runs `a/__init__.py` and `a/b/__init__.py` first, so each import also depends on
every package above the module it names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("arbees_core", "arbees_cli")
#: Cycles known and owned elsewhere, each to be removed by its owner. Any other cycle fails; so does a known one if
#: it grows or is gone (then delete the entry).
KNOWN: dict[str, list[list[str]]] = {"arbees_core": [], "arbees_cli": []}


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _running_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node` except those under an `if TYPE_CHECKING:` (its `else` runs and counts)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for other in child.orelse:
                yield other
                yield from _running_nodes(other)
            continue
        yield child
        yield from _running_nodes(child)


def _imported(name: str, path: Path) -> Iterator[str]:
    """The dotted names `path` (module `name`) imports, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _running_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of `modules` that importing it runs first (packages above an import included)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for target in _imported(name, path):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in modules and dep != name and not name.startswith(dep + "."):
                    deps.add(dep)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
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
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_among_the_package_modules(package: str) -> None:
    modules = _modules(package)
    assert modules, f"no modules found under {ROOT / package}"
    assert sorted(cycles(import_graph(modules))) == KNOWN[package]


def test_the_cycle_check_sees_a_cycle_through_a_late_import_and_a_package() -> None:
    graph = {"p": {"p.b"}, "p.a": {"p"}, "p.b": {"p.a"}, "q": set()}
    assert cycles(graph) == [["p", "p.a", "p.b"]]


def test_the_venue_registry_imports_no_venue_package() -> None:
    """The registry loads adapters on first use: importing any venue module stays light and cycle-free."""
    modules = _modules("arbees_core")
    deps = import_graph(modules)["arbees_core.venues"]
    assert not {d for d in deps if d.startswith(("arbees_core.venues.kalshi", "arbees_core.venues.polymarket"))}


#: The process-stack harness (`arbees_core.harness`) starts services for the tests, the benchmarks and the demo;
#: the product never stands on it.
PRODUCT = ("arbees_core.services", "arbees_core.runtime", "arbees_core.transport")
HARNESS = "arbees_core.harness"


def reaching(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that importing `start` runs, through any chain of imports."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_no_service_runtime_or_transport_module_imports_the_process_stack_harness() -> None:
    graph = import_graph(_modules("arbees_core"))
    product = [m for m in graph if m.startswith(PRODUCT)]
    assert HARNESS in graph and len(product) > 20
    assert [m for m in sorted(product) if HARNESS in reaching(graph, m)] == []


def test_the_harness_check_follows_a_chain_of_imports() -> None:
    graph = {"p.runtime.a": {"p.util"}, "p.util": {HARNESS}, HARNESS: set(), "p.other": set()}
    assert HARNESS in reaching(graph, "p.runtime.a") and HARNESS not in reaching(graph, "p.other")
