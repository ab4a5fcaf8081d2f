"""The package's shape: imports flow one way between stages, and no module imports itself back.

Every import counts, at module level or inside a function: a function-level import hides a cycle
from Python's loader, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import adcut

PACKAGE_ROOT = Path(adcut.__file__).parent

# The stages, lowest first: a module may import its own stage and the stages before it, never one after.
STAGES = (
    "core",
    "media",
    "features",
    "formats",
    "words",
    "models",
    "detect",
    "learn",
    "evaluate",
    "process",
    "labeller",
    "serve",
    "demo",
    "cli",
)
# The package's face: below every stage (errors, version) or above all of them (the entry point).
FACE_RANK = {"adcut": -1, "adcut.errors": -1, "adcut.__main__": len(STAGES)}


def module_name(path: Path) -> str:
    parts = ["adcut", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The adcut modules that ``path`` imports anywhere in its body."""
    found: set[str] = set()
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules and name != own}


def stage_rank(module: str) -> int:
    if module in FACE_RANK:
        return FACE_RANK[module]
    return STAGES.index(module.split(".")[1])


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_every_module_belongs_to_a_stage():
    strays = [m for m in all_modules() if m not in FACE_RANK and m.split(".")[1] not in STAGES]
    assert not strays, f"modules outside the stage packages: {strays}"


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_flow_from_lower_stages_only():
    upward = [
        f"{source} imports {target}"
        for source, targets in import_graph().items()
        for target in targets
        if stage_rank(target) > stage_rank(source)
    ]
    assert not upward, "upward imports between stages:\n" + "\n".join(sorted(upward))


def test_every_package_says_what_it_owns():
    for init in PACKAGE_ROOT.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(PACKAGE_ROOT)} has no docstring"


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_find_cycle_finds_a_planted_cycle(graph, expected):
    assert find_cycle(graph) == expected


def test_function_level_imports_count(tmp_path, monkeypatch):
    module = tmp_path / "adcut" / "detect" / "x.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from adcut.learn import train\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE_ROOT", tmp_path / "adcut")
    assert imported_modules(module, {"adcut.learn.train": module, "adcut.learn": module}) == {
        "adcut.learn",
        "adcut.learn.train",
    }
