"""The ``modelgrid`` command loads no subcommand's dependencies until that subcommand runs:
every module of ``modelgrid_cli`` imports, at module level, only the standard library and
``modelgrid_cli`` itself (PyYAML aside, for ``documents``, which only ``render`` imports, when
it runs). So ``modelgrid gateway`` never loads kopf or Ray, and ``modelgrid operator`` never
loads the gateway; tests/integration/install proves each runs with only its extra installed."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import modelgrid_cli
import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(modelgrid_cli.__file__).parent
LOADED_WHEN_RUN = {"documents": {"yaml"}}
"""Modules that only a subcommand's ``run`` imports may use what that subcommand needs."""


def _module_level_imports(path: Path) -> set[str]:
    """Top-level packages imported outside functions (``TYPE_CHECKING`` blocks excluded)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            continue
        for child in ast.walk(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                break
            if isinstance(child, ast.Import):
                found |= {alias.name.split(".")[0] for alias in child.names}
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.add(child.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_cli_imports_nothing_of_a_subcommand_until_it_runs(path: Path) -> None:
    allowed = {*sys.stdlib_module_names, "__future__", "modelgrid_cli"}
    allowed |= LOADED_WHEN_RUN.get(path.stem, set())
    assert _module_level_imports(path) <= allowed


def test_cli_import_check_sees_a_module_level_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import argparse\nimport kopf\nif TYPE_CHECKING:\n    import ray\n"
        "def run():\n    import torch\n"
    )
    assert _module_level_imports(module) == {"argparse", "kopf"}
