"""The layering the code stands on (issue 15's first step): models/ is the ground floor, and jobs/
talk to people through the delivery layer, never through the chat handlers.

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
