"""The import directions in ``.importlinter`` hold, and each contract catches the import it forbids.

import-linter reads the packages from the path it is given, so each broken case lints a copy of
the tree with one forbidden import added: a contract that could not fail would pass it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cli/modelgrid_cli", "operator/modelgrid_operator", "serving/modelgrid_serving")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` (the dev extra installs it beside this interpreter) on ``root``."""
    here = str(Path(sys.executable).parent)
    tool = shutil.which("lint-imports", path=os.pathsep.join((here, os.environ.get("PATH", ""))))
    assert tool, "lint-imports is missing: install the dev extra (pip install -e '.[dev]')"
    path = os.pathsep.join(str(root / folder) for folder in ("cli", "operator", "serving"))
    # One contract per line, however long its name: the tests read the verdicts line by line.
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200"}
    return subprocess.run(
        [tool, "--config", str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_contracts_hold_on_the_tree() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# (file to add the import to, the import, the contract that must break)
FORBIDDEN = [
    (
        "serving/modelgrid_serving/protocol/base.py",
        "from modelgrid_serving import errors",
        "The OpenAI protocol imports nothing of ours",
    ),
    (
        "serving/modelgrid_serving/blocking_http.py",
        "from modelgrid_serving import errors",
        "The blocking HTTP helper imports nothing of ours",
    ),
    (
        "serving/modelgrid_serving/engines/base.py",
        "from modelgrid_serving import app",
        "Serving layers",
    ),
    (
        "serving/modelgrid_serving/gateway/routing.py",
        "from modelgrid_serving.engines import vllm",
        "The gateway imports no engine",
    ),
    (
        "serving/modelgrid_serving/gateway/sink.py",
        "from modelgrid_serving.gateway import state",
        "The gateway's parts import neither its assembly",
    ),
    (
        "serving/modelgrid_serving/names.py",
        "from modelgrid_operator import api",
        "Serving never imports the operator",
    ),
    (
        "operator/modelgrid_operator/status.py",
        "from modelgrid_serving import errors",
        "The operator imports only serving's contract modules",
    ),
    (
        "operator/modelgrid_operator/handlers.py",
        "import modelgrid_cli",
        "Nothing imports the CLI",
    ),
]


@pytest.mark.parametrize(("path", "line", "contract"), FORBIDDEN, ids=[c for *_, c in FORBIDDEN])
def test_import_contracts_catch_a_forbidden_import(
    tmp_path: Path, path: str, line: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    with (tmp_path / path).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    verdicts = [row for row in result.stdout.splitlines() if row.startswith(contract)]
    assert verdicts and " BROKEN" in verdicts[0], result.stdout
