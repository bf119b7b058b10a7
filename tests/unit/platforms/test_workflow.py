"""The pull-request workflow (``.github/workflows/ci.yml``) cannot run here: it is linted with
actionlint (pinned in ``.ci/tools.sh``, installed on first use) like every workflow (the release
workflow's own checks are tests/unit/images/test_release.py), and its commands are checked to be
the README's own.

actionlint comes from ``$MODELGRID_ACTIONLINT`` or the cache ``.ci/tools.sh actionlint`` fills;
the test installs it when the cache is empty and fails, never skips, when it cannot.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from pinned_tools import pinned_tool, run_tool
from platform_support import ROOT

pytestmark = pytest.mark.unit

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"


@pytest.fixture(scope="module")
def actionlint() -> Path:
    return pinned_tool("actionlint")


def _lint(actionlint: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    # actionlint also runs shellcheck on every `run:` block where shellcheck is installed.
    return run_tool(actionlint, "-no-color", *paths)


def test_workflows_pass_actionlint(actionlint):
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {WORKFLOW, RELEASE} <= set(workflows)
    result = _lint(actionlint, *workflows)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("workflow", "right", "wrong", "named"),
    [
        (WORKFLOW, "${{ matrix.runner }}", "${{ matrix.runer }}", "runer"),
        (RELEASE, "steps.build.outputs", "steps.bulid.outputs", "bulid"),
    ],
    ids=["ci", "release"],
)
def test_workflow_actionlint_catches_a_broken_workflow(
    actionlint, tmp_path, workflow, right, wrong, named
):
    """A misspelt reference in each workflow fails the lint, which names it."""
    text = workflow.read_text()
    assert right in text
    broken = tmp_path / ".github" / "workflows" / workflow.name
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(right, wrong))
    result = _lint(actionlint, broken)
    assert result.returncode == 1 and named in result.stdout, result.stdout + result.stderr


def _jobs() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_workflow_runs_the_suite_on_linux_x86_64_with_ci_run():
    assert "bash .ci/run" in _runs(_jobs()["linux-x86_64"])


def test_workflow_runs_the_readme_commands_on_a_mac_and_on_linux_aarch64():
    job = _jobs()["readme-commands"]
    runners = {entry["runner"] for entry in job["strategy"]["matrix"]["include"]}
    assert runners == {"macos-14", "ubuntu-24.04-arm"}
    runs = _runs(job)
    readme = (ROOT / "README.md").read_text()
    assert "make test-unit" in runs and "make test-unit" in readme
    assert ".ci/smoke_up.py make up" in runs and "make up " in readme


def test_workflow_pins_every_action_by_commit():
    uses = re.findall(r"uses:\s*(\S+)", WORKFLOW.read_text())
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


def _smoke_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("smoke_up", ROOT / ".ci" / "smoke_up.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workflow_smoke_test_reads_what_modelgrid_up_prints():
    """The smoke test waits for two lines of `modelgrid up`; their wording lives in local.py."""
    import io

    from modelgrid_serving import local

    smoke = _smoke_module()
    out = io.StringIO()
    local._say(out, "OpenAI API at http://127.0.0.1:8000/v1")
    local._say(out, local.curl_example("http://127.0.0.1:8000", "tiny-chat"))
    api, curl = out.getvalue().splitlines()
    assert smoke.API.match(api)[1] == "http://127.0.0.1:8000/v1"
    assert smoke.CURL.match(curl)
    assert 'f"OpenAI API at {url}/v1"' in (ROOT / "serving/modelgrid_serving/local.py").read_text()
