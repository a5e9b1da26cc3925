"""The layering the code stands on: models/ is the ground floor; handlers/ (the flows) and jobs/
know no chat platform; jobs/ talk to people through the delivery layer, never through the chat
handlers; and no chain of imports leads from one package back into itself through another.

Every import statement counts, also one inside a function (a hidden upward import is still one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports_of(source: str) -> set[str]:
    """The top-level packages a module's source imports, wherever the import statement is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def imported_packages(package: str) -> dict[str, set[str]]:
    """Per module of `package`: the top-level packages it imports."""
    return {str(path.relative_to(ROOT)): imports_of(path.read_text(encoding="utf-8")) for path in sorted((ROOT / package).rglob("*.py"))}


@pytest.mark.parametrize(("package", "forbidden"), [
    ("models", {"bot", "handlers", "jobs", "telegram"}),  # the clock and the labels live in models/ now
    ("jobs", {"handlers", "telegram"}),
    ("handlers", {"telegram"}),  # the flows and commands speak neutral events and widgets (bot/chat.py)
])
def test_a_layer_imports_nothing_above_it(package, forbidden):
    found = {module: sorted(names & forbidden) for module, names in imported_packages(package).items() if names & forbidden}
    assert found == {}, f"{package}/ imports {found}"


def test_no_production_module_imports_the_development_tools():
    """sandbox/ (the local Bot API, the terminal sandbox, the demo data) stays beside the product;
    only the CLI's `gridbot console` starts it."""
    found = {module for package in ("bot", "handlers", "models", "jobs") for module, names in imported_packages(package).items()
             if "sandbox" in names and module != "bot/cli.py"}
    assert found == set()


def test_the_checker_sees_imports_inside_functions():
    """The check above cannot pass by accident: an import inside a function, or a plain `import`, is found."""
    assert imports_of("def f():\n    from handlers.issues import card\n") == {"handlers"}
    assert imports_of("import telegram.ext\nfrom . import sibling\n") == {"telegram"}


def module_graph() -> dict[str, set[str]]:
    """Every module of bot/, handlers/, jobs/ and models/ -> the modules of those it imports."""
    paths = {}
    for package in ("bot", "handlers", "jobs", "models"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            paths[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m in paths and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_crosses_a_package_boundary():
    """Inside a package modules may lean on each other; across packages every chain goes one way
    (the composition roots, bot/cli.py and bot/runtime.py, are the only bot modules that import
    handlers/, and nothing the handlers import leads back to them; a channel adapter imports none)."""
    crossing = [c for c in cycles(module_graph()) if len({m.split(".")[0] for m in c}) > 1]
    assert crossing == []
    importers = {m for m, deps in module_graph().items() if m.startswith("bot") and any(d.startswith("handlers") for d in deps)}
    assert importers <= {"bot.cli", "bot.runtime"}


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a.x": {"b.y"}, "b.y": {"a.x"}, "c": set()}) == [["a.x", "b.y"]]
