"""The suite's own plumbing: the order the integration scopes are handed to the workers in."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import FIRST

ROOT = Path(__file__).resolve().parents[1]


def test_every_scope_ordered_first_exists():
    """A renamed module or class would silently fall back to the end of the queue."""
    for scope in FIRST:
        path, _, cls = scope.partition("::")
        assert (ROOT / path).is_file(), scope
        if cls:
            classes = {node.name for node in ast.walk(ast.parse((ROOT / path).read_text())) if isinstance(node, ast.ClassDef)}
            assert cls in classes, scope


def test_the_ordered_scopes_are_integration_tests():
    for scope in FIRST:
        source = (ROOT / scope.partition("::")[0]).read_text()
        assert "pytest.mark.integration" in source, scope
