"""The import graph: the layers point one way (cli -> classroom -> grading -> checking ->
labs -> core), registries/ is the adapter layer and imports nothing from workshop/, and
module-level imports across the kit form no cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("registries", "workshop")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


# Top to bottom; a module may import its own layer and those below it, never above.
# "core" is the rest of workshop/: the cohort, state, SSH, engine, lab cloud, cloud VMs.
LAYERS = ("cli", "classroom", "grading", "checking", "labs", "core")
# A lab's own service code (built into its image), not the kit's.
LAB_CONTENT = re.compile(r"workshop\.labs\.(\d|practical\.)")


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def test_layers_point_one_way():
    """Function-level imports count too: a lazy import is still a dependency."""
    upward = {}
    for name, path in _modules().items():
        if not name.startswith("workshop.") or (
            "labs." in name and name.split(".")[2][:1] in "0123456789p"
        ):
            continue
        rank = LAYERS.index(_layer(name))
        above = sorted(
            imported
            for imported in _imports(path, top_level_only=False)
            if imported.startswith("workshop.") and LAYERS.index(_layer(imported)) < rank
        )
        if above:
            upward[name] = above
    assert upward == {}


def test_registries_imports_nothing_from_workshop():
    offenders = {
        name: sorted(i for i in _imports(path, top_level_only=False) if i.startswith("workshop"))
        for name, path in _modules().items()
        if name.startswith("registries")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_module_level_imports_form_no_cycle():
    modules = _modules()
    graph = {
        name: {i for i in _imports(path, top_level_only=True) if i in modules and i != name}
        for name, path in modules.items()
    }
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
