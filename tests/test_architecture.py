"""The shape of the code, checked on every run (docs/architecture.md): the layers import only
downwards, no import cycle, no function over 50 lines, environment variables set only at entry
points, and `tasks/` holds only thin `@task`s."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from heartgate.core.config import PROJECT_ROOT
from heartgate.serving.packaging import PROJECT_PACKAGES, _imported_names, _module_path

MAX_FUNCTION_LINES = 50
LAYERS = {"heartgate": set(), "tasks": {"heartgate"}, "flows": {"heartgate", "tasks"}, "service": {"heartgate"}}
# Inside the core, each package imports only those before it; cli and stack sit on top.
CORE_PACKAGES = ("core", "adapters", "serving", "ml", "release")
ENTRY_POINTS_THAT_SET_ENVIRONMENT = {"heartgate/adapters/state.py"}  # activate(), called by the CLI and the tests


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PROJECT_PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = project_modules()


def imports_of(name: str) -> set[str]:
    """Project modules `name` imports (at any place in the file), resolved to modules that exist."""
    found = set()
    for imported in _imported_names(MODULES[name]):
        while imported and imported not in MODULES:
            imported = imported.rpartition(".")[0]
        if imported and imported != name:
            found.add(imported)
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_layer_imports_only_the_layers_below_it(module):
    layer = module.split(".")[0]
    upward = {other for other in imports_of(module) if other.split(".")[0] not in LAYERS[layer] | {layer}}
    assert upward == set(), f"{module} imports {sorted(upward)} from a layer above or beside it"


def core_floor(module: str) -> int:
    """A heartgate module's package by its place in CORE_PACKAGES (cli and stack: above them all)."""
    package = module.split(".")[1] if module.count(".") else ""
    return CORE_PACKAGES.index(package) if package in CORE_PACKAGES else len(CORE_PACKAGES)


@pytest.mark.parametrize("module", sorted(name for name in MODULES if name.startswith("heartgate.")))
def test_each_core_package_imports_only_the_packages_before_it(module):
    upward = {other for other in imports_of(module) if other.startswith("heartgate.") and core_floor(other) > core_floor(module)}
    assert upward == set(), f"{module} imports {sorted(upward)} from a package after its own in {CORE_PACKAGES}"


def test_every_core_module_is_in_a_package_or_on_top():
    loose = [
        name
        for name, path in MODULES.items()
        if name.startswith("heartgate.") and name.count(".") == 1 and path.name != "__init__.py" and name not in ("heartgate.cli", "heartgate.stack")
    ]
    assert loose == [], f"put these in one of {CORE_PACKAGES}"


def test_architecture_md_lists_every_module():
    """docs/architecture.md is the one list of packages and modules: each folder has a list item
    "- `folder/`: ..." naming every module in it; a module missing from its item fails."""
    items = re.split(r"\n(?=\S)", (PROJECT_ROOT / "docs" / "architecture.md").read_text())  # a list item and its indented lines
    lines = {item.split("`")[1]: item for item in items if item.startswith("- `") and item.split("`")[1].endswith("/")}
    unnamed = [
        str(path.relative_to(PROJECT_ROOT))
        for path in MODULES.values()
        if path.name != "__init__.py" and f"`{path.name}`" not in lines.get(f"{path.parent.relative_to(PROJECT_ROOT)}/", "")
    ]
    assert unnamed == [], f"docs/architecture.md does not name these on their folder's line: {unnamed}"


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    visiting: list[str] = []
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(name: str) -> None:
        if name in visiting:
            cycles.append(visiting[visiting.index(name) :] + [name])
            return
        if name in done:
            return
        visiting.append(name)
        for other in sorted(graph[name]):
            visit(other)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    return cycles


def test_there_is_no_import_cycle():
    assert find_cycles({name: imports_of(name) for name in MODULES}) == []


def functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", sorted({*MODULES.values(), *(PROJECT_ROOT / "benchmarks").glob("*.py")}), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_no_function_is_longer_than_50_lines(path):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in functions(ast.parse(path.read_text()))
        if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def sets_environment(tree: ast.AST) -> list[int]:
    """Lines that write os.environ: item assignment, update/setdefault/pop, os.putenv."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ" for t in node.targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "os.environ.update",
            "os.environ.setdefault",
            "os.environ.pop",
            "os.putenv",
        ):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_entry_points_set_environment_variables(module):
    relative = str(MODULES[module].relative_to(PROJECT_ROOT))
    if relative in ENTRY_POINTS_THAT_SET_ENVIRONMENT:
        return
    assert sets_environment(ast.parse(MODULES[module].read_text())) == []


@pytest.mark.parametrize("module", sorted(name for name in MODULES if name.startswith("tasks.")))
def test_task_modules_hold_only_tasks(module):
    tree = ast.parse(MODULES[module].read_text())
    top_level = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    not_tasks = [node.name for node in top_level if not any("task" in ast.unparse(decorator) for decorator in getattr(node, "decorator_list", []))]
    assert not_tasks == [], "tasks/ holds only thin @tasks; logic belongs in heartgate/"


def test_the_checks_see_a_violation():
    """The checks above are not vacuous: they find a cycle, an import and a write to os.environ."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert "heartgate.serving.targets" in imports_of("heartgate.release.promotion")
    assert "heartgate.serving.bento" in imports_of("heartgate.serving.targets.local")
    assert sets_environment(ast.parse("import os\nos.environ['X'] = '1'\nos.environ.update(Y='2')\n")) == [2, 3]
    assert _module_path("heartgate.serving.targets", PROJECT_ROOT).name == "__init__.py"
    assert core_floor("heartgate.core.config") < core_floor("heartgate.adapters.registry") < core_floor("heartgate.cli")
