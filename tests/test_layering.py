"""The layering of the product's packages, read from the code's own imports.

- nothing below the top (``schemas streams jobs sinks settlement live dashboards``) imports
  ``learnstream``, the CLI, settings composition and local stack;
- each package imports only the packages beneath it (docs/architecture.md, "How the code is
  layered"): ``schemas`` nothing of the project, ``streams`` only ``schemas``, …;
- the import graph of the product's modules has no cycle (imports inside functions count;
  imports only for type checkers, under ``if TYPE_CHECKING:``, do not);
- no module of the product is over 500 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Each package and the project packages it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "streams": {"schemas"},
    "settlement": {"schemas", "streams"},
    "jobs": {"schemas", "streams"},
    "live": {"schemas", "streams"},
    "sinks": {"schemas", "streams", "settlement"},
    "dashboards": {"schemas", "streams", "sinks"},
    "learnstream": {
        "schemas", "streams", "settlement", "jobs", "live", "sinks", "dashboards", "bench",
    },
}  # fmt: skip
PACKAGES = tuple(ALLOWED)
MAX_LINES = 500


def modules() -> dict[str, Path]:
    """{dotted module name: file} of every module of the product."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = modules()


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imported(module: str, path: Path) -> Iterator[str]:
    """The project modules ``module`` imports (run-time imports, wherever they are)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from a.b import c` imports the module a.b.c when there is one, else a.b
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        if _type_checking_only(node, parents):
            continue
        for name in names:
            if name.split(".")[0] not in PACKAGES and name.split(".")[0] != "bench":
                continue
            yield name
            # importing a.b.c runs the packages a and a.b first, unless they are the importing
            # module's own packages (already importing, as Python does for every submodule)
            parts = name.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if not module.startswith(parent + "."):
                    yield parent


GRAPH: dict[str, set[str]] = {
    m: {n for n in imported(m, p) if n in MODULES and n != m} for m, p in MODULES.items()
}


def test_layering_lower_packages_never_import_the_top_or_a_layer_above() -> None:
    wrong = []
    for module, path in MODULES.items():
        package = module.split(".")[0]
        for name in imported(module, path):
            target = name.split(".")[0]
            if target != package and target not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_layering_schemas_is_the_ground_floor() -> None:
    for module, path in MODULES.items():
        if module.split(".")[0] == "schemas":
            outside = {n for n in imported(module, path) if n.split(".")[0] != "schemas"}
            assert outside == set(), module


def test_layering_the_module_import_graph_has_no_cycle() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for nxt in sorted(GRAPH[module]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, " -> ".join(cycle)


def test_layering_finds_imports_it_must_find() -> None:
    """The reader itself: a known import inside a function, and a TYPE_CHECKING one ignored."""
    assert "learnstream.stack.services" in GRAPH["learnstream.wiring"]  # inside a function
    assert "learnstream.settings" not in GRAPH["learnstream.stack.manager"]  # TYPE_CHECKING
    assert "schemas.errors" in GRAPH["streams.kafka"]
    assert "schemas" in GRAPH["streams.topics"]  # importing schemas.derived runs schemas first


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layering_no_module_of_the_product_is_over_500_lines(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)}: {lines} lines"
