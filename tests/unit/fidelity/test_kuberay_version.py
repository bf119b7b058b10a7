"""One supported KubeRay range, said alike wherever a user or a script reads it.

The README's cluster section, the chart's NOTES and ``e2e/kind/run.sh`` name the range
("KubeRay 1.6 to 1.7") and the KubeRay Helm chart version that is installed (pinned in
``run.sh``, which before installed the chart's latest). The CRDs the fidelity tests validate
against (``../shared/kuberay-crds``) must be of that range, so what the tests check is what the
range promises. The range is what modelgrid's rendering was read against: KubeRay's
``ValidateRayServiceMetadata``, ``setMissingRayStartParams``, ``initLivenessAndReadinessProbe``
and ``updateHeadPodServeLabel`` behave alike from v1.6.0 to v1.7.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fidelity_support.kuberay import kuberay_crds_line

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
RANGE = re.compile(r"KubeRay\s+(\d+)\.(\d+)\s+to\s+(\d+)\.(\d+)")
STATED_IN = {
    "README.md": ROOT / "README.md",
    "NOTES.txt": ROOT / "charts" / "modelgrid" / "templates" / "NOTES.txt",
    "run.sh": ROOT / "e2e" / "kind" / "run.sh",
    "docs/operator.md": ROOT / "docs" / "operator.md",
    "e2e/kind/README.md": ROOT / "e2e" / "kind" / "README.md",
}
Line = tuple[int, int]


def _ranges(text: str) -> set[tuple[Line, Line]]:
    return {((int(a), int(b)), (int(c), int(d))) for a, b, c, d in RANGE.findall(text)}


def _supported() -> tuple[Line, Line]:
    (found,) = _ranges(STATED_IN["run.sh"].read_text())
    return found


def _pinned() -> str:
    (version,) = re.findall(
        r'^KUBERAY_VERSION="\$\{KUBERAY_VERSION:-(\d+\.\d+\.\d+)\}"$',
        STATED_IN["run.sh"].read_text(),
        flags=re.MULTILINE,
    )
    return version


@pytest.mark.parametrize("name", sorted(STATED_IN))
def test_kuberay_range_is_stated_alike(name):
    assert _ranges(STATED_IN[name].read_text()) == {_supported()}, name


def test_kuberay_pinned_chart_is_in_the_range_and_installed_by_run_sh():
    low, high = _supported()
    assert low <= high
    major, minor, _ = (int(part) for part in _pinned().split("."))
    assert low <= (major, minor) <= high
    run_sh = STATED_IN["run.sh"].read_text()
    assert '--version "$KUBERAY_VERSION"' in run_sh
    assert "${KUBERAY_VERSION:+" not in run_sh  # never "the chart's latest"


@pytest.mark.parametrize("name", ["README.md", "NOTES.txt"])
def test_kuberay_install_instructions_name_the_pinned_chart(name):
    text = STATED_IN[name].read_text()
    assert re.findall(r"--version\s+(\d+\.\d+\.\d+)", text) == [_pinned()], name


def test_kuberay_crds_of_the_tests_are_of_the_pinned_line():
    """The strict schema tests read KubeRay's CRDs from ../shared; their README says the line."""
    line = kuberay_crds_line()
    low, high = _supported()
    assert low <= line <= high
    major, minor, _ = (int(part) for part in _pinned().split("."))
    assert line == (major, minor)
