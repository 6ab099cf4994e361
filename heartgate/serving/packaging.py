"""What each artifact ships, derived from the service's own imports, never listed by hand.

`module_files("service.lambda_handler")` is the entry module plus every project module it
imports, at any depth (function-level imports included), and their packages' `__init__.py`.
`served_files()`, what the two entry modules load together, is what the bento and the Lambda zip
carry and what a release record vouches for. Third-party packages come from the bento's Python
environment or the Lambda wheels.
"""

from __future__ import annotations

import ast
from pathlib import Path

from heartgate.core.config import PROJECT_ROOT

PROJECT_PACKAGES = ("heartgate", "service", "tasks", "flows")
SERVED_ENTRY_MODULES = ("service.service", "service.lambda_handler")  # the bento server's and the Lambda function's


def _module_path(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path) -> set[str]:
    """Every absolute module name an import statement in `path` may load."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)  # `from a.b import c`: c may be a module of its own
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.split(".")[0] in PROJECT_PACKAGES}


def module_files(entry: str, root: Path = PROJECT_ROOT) -> list[str]:
    """Paths, relative to `root`, of the project files that importing `entry` loads."""
    seen: dict[str, Path] = {}
    pending = [entry]
    while pending:
        name = pending.pop()
        path = _module_path(name, root)
        if name in seen or path is None:
            continue
        seen[name] = path
        pending += sorted(_imported_names(path))
        parts = name.split(".")
        pending += [".".join(parts[:depth]) for depth in range(1, len(parts))]  # the packages above it
    return sorted(str(path.relative_to(root)) for path in seen.values())


def served_files(root: Path = PROJECT_ROOT) -> list[str]:
    """The serving code: what both entry modules load. The bento and the Lambda zip each carry all
    of it, so the served process can hash the very files a release record vouches for."""
    return sorted({name for entry in SERVED_ENTRY_MODULES for name in module_files(entry, root)})
