"""Helm for the chart tests: found once, each values set rendered once per session.

The fixtures are registered by ``conftest.py`` beside this file; tests import the rest.

helm comes from ``$MODELGRID_HELM`` or from the cache that ``.ci/tools.sh`` fills (the pinned
wheel named there). Without either, the tests that need helm skip and say how to get it.
The Prometheus Operator CRDs come from ``$MODELGRID_PROMETHEUS_CRDS`` or the same cache, which
:func:`prometheus_crds` fills through ``.ci/tools.sh prometheus-crds`` when it is empty.
checkov comes from ``$MODELGRID_CHECKOV`` or the virtual environment ``.ci/tools.sh checkov``
makes in the same cache; without either, the scans skip and say how to get it, as helm's do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml
from pinned_tools import install

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "modelgrid"
TOOLS_SH = ROOT / ".ci" / "tools.sh"
RELEASE, NAMESPACE = "mg", "modelgrid-system"
MONITORING_API = "monitoring.coreos.com/v1"

VALUE_SETS = ["default", *sorted(p.stem for p in (CHART / "ci").glob("*.yaml"))]
"""The default values plus every ``charts/modelgrid/ci/*.yaml`` (rendered on top of them)."""


def _pinned(*names: str) -> list[str]:
    """The values ``.ci/tools.sh`` pins under ``names`` (its ``NAME="value"`` lines)."""
    script = TOOLS_SH.read_text()
    found = [re.search(rf'^{name}="([^"]+)"', script, re.MULTILINE) for name in names]
    assert all(found), f".ci/tools.sh no longer names {' and '.join(names)}"
    return [match[1] for match in found if match]


def _tools_cache() -> Path:
    """Where ``.ci/tools.sh`` installs what it pins: ``$MODELGRID_CACHE/tools``."""
    cache = Path(os.environ.get("MODELGRID_CACHE") or Path.home() / ".cache" / "modelgrid")
    return cache / "tools"


def cached_helm() -> Path:
    """Where ``.ci/tools.sh`` puts helm: its pinned wheel and version name the folder."""
    wheel, version = _pinned("WHEEL", "WHEEL_VERSION")
    return _tools_cache() / f"{wheel}-{version}" / "helm"


def cached_checkov() -> Path:
    """Where ``.ci/tools.sh checkov`` installs checkov: its pinned version names the folder."""
    (version,) = _pinned("CHECKOV_VERSION")
    return _tools_cache() / f"checkov-{version}" / "bin" / "checkov"


def _variable(tool: str) -> str:
    return f"MODELGRID_{tool.upper()}"


def _find(tool: str, cached: Path, complete: Path) -> Path | None:
    """``$MODELGRID_<TOOL>``, else the ``cached`` copy of ``.ci/tools.sh`` once its marker
    ``complete`` (written last) is there, else None."""
    named = os.environ.get(_variable(tool))
    if named:
        return Path(named)
    return cached if cached.is_file() and complete.is_file() else None


def find_checkov() -> Path | None:
    """``$MODELGRID_CHECKOV``, else the cached checkov of ``.ci/tools.sh``, else None."""
    cached = cached_checkov()
    return _find("checkov", cached, cached.parents[1] / ".complete")


def find_helm() -> Path | None:
    """``$MODELGRID_HELM``, else the cached helm of ``.ci/tools.sh``, else None."""
    cached = cached_helm()
    return _find("helm", cached, cached.parent / ".complete")


def runnable(tool: str, found: Path | None, cached: Path) -> Path:
    """A tool the chart tests run, as ``find_*`` found it: skipped, saying how to get it, where
    it is not there; failed where what ``$MODELGRID_<TOOL>`` (or the cache) names cannot run."""
    if found is None:
        pytest.skip(
            f"{tool} is missing: set {_variable(tool)} or run .ci/tools.sh {tool} (it installs "
            f"the pinned {tool} at {cached})"
        )
    if not os.access(found, os.X_OK):
        pytest.fail(f"{_variable(tool)}={found} is not an executable file")
    return found


def cached_prometheus_crds() -> Path:
    """Where ``.ci/tools.sh prometheus-crds`` puts the Prometheus Operator CRDs."""
    sdist, version = _pinned("CRDS_SDIST", "CRDS_SDIST_VERSION")
    return _tools_cache() / f"{sdist}-{version}"


def prometheus_crds() -> Path:
    """The folder of the Prometheus Operator's ServiceMonitor and PodMonitor CRDs.

    ``$MODELGRID_PROMETHEUS_CRDS`` names one; else the cache of ``.ci/tools.sh``, which this
    fills (from the pinned PyPI package) when it is empty. It fails, never skips: the files are
    a package download away on every machine that runs the tests.
    """
    named = os.environ.get("MODELGRID_PROMETHEUS_CRDS")
    if named:
        return Path(named)
    cached = cached_prometheus_crds()
    if not (cached / ".complete").is_file():
        installed = install("prometheus-crds")
        assert installed == cached, installed
    return cached


@dataclass
class Helm:
    """One helm binary, run on the chart, never on a cluster or the user's helm settings."""

    path: Path
    home: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.home / "no-cluster"),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        return subprocess.run(
            [str(self.path), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=env,
        )

    def template(self, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
        return self.run("template", RELEASE, str(chart), "--namespace", NAMESPACE, *args)

    def notes(self, *args: str) -> str:
        """NOTES.txt as ``helm install`` prints it (a client-side dry run: no cluster)."""
        result = self.run(
            "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *args
        )
        if "cluster unreachable" in result.stderr:
            pytest.skip(
                f"{self.path}: its `install --dry-run=client` needs a cluster (helm 3); "
                "NOTES.txt is still checked through the chart copy"
            )
        assert result.returncode == 0, result.stderr
        _, found, notes = result.stdout.partition("\nNOTES:\n")
        assert found, f"helm install printed no NOTES:\n{result.stdout[-2000:]}"
        return notes


@dataclass
class Rendered:
    """The objects of one ``helm template`` run (CRDs included)."""

    name: str
    stdout: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    @cached_property
    def by_kind(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for obj in self.objects:
            out.setdefault(obj["kind"], []).append(obj)
        return out

    def keys_secret(self) -> dict[str, Any]:
        """The chart-made API-keys Secret (the other one is the gateways' peer secret)."""
        (secret,) = [
            o for o in self.by_kind.get("Secret", []) if not o["metadata"]["name"].endswith("-peer")
        ]
        return secret

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        """The single object of a kind (and component label), or fail."""
        found = [
            o
            for o in self.by_kind.get(kind, [])
            if component is None
            or o["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"{self.name}: {len(found)} {kind} objects of {component}"
        return found[0]


CHECKOV_CONFIG = ROOT / ".checkov.yaml"
"""The checks the project skips, each with its reason (passed to every scan)."""


@dataclass(frozen=True)
class Finding:
    """One failed checkov check on one resource of one scanned file."""

    check_id: str
    check_name: str
    resource: str
    file: str
    guideline: str

    def __str__(self) -> str:
        guideline = f" ({self.guideline})" if self.guideline else ""
        return f"{self.check_id} {self.resource} in {self.file}: {self.check_name}{guideline}"


@dataclass(repr=False)
class Scan:
    """What one checkov run over a folder found: failures, and every resource it checked."""

    failed: list[Finding]
    checked: set[tuple[str, str]]
    """(file, resource) of every resource that passed or failed a check."""

    def __repr__(self) -> str:  # short in tracebacks: the assertion message lists the failures
        return f"Scan({len(self.failed)} failed, {len(self.checked)} resources checked)"

    def failed_in(self, file: str) -> list[Finding]:
        return [f for f in self.failed if f.file == file]

    def checked_in(self, file: str) -> set[str]:
        return {resource for where, resource in self.checked if where == file}


@dataclass
class Checkov:
    """One checkov executable, run offline on a folder of manifests with the project's skips."""

    path: Path
    home: Path

    def scan(self, folder: Path) -> Scan:
        # A clean environment: no API key of the user's reaches checkov, and it neither
        # downloads Bridgecrew's check metadata nor asks PyPI for a newer version.
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "TMPDIR": str(self.home),
            "BC_SKIP_MAPPING": "TRUE",
            "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
        }
        result = subprocess.run(
            [
                str(self.path),
                "--directory", str(folder),
                "--config-file", str(CHECKOV_CONFIG),
                "--framework", "kubernetes",
                "--output", "json",
                "--compact",
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=env,
            cwd=self.home,
        )  # fmt: skip
        assert result.returncode in (0, 1), f"checkov failed to run:\n{result.stderr[-3000:]}"
        report = json.loads(result.stdout)
        assert report.get("check_type") == "kubernetes", result.stdout[-2000:]
        assert report["summary"]["parsing_errors"] == 0, report["results"].get("parsing_errors")
        results = report["results"]
        return Scan(
            failed=[
                Finding(
                    check_id=c["check_id"],
                    check_name=c["check_name"],
                    resource=c["resource"],
                    file=c["file_path"].lstrip("/"),
                    guideline=c.get("guideline") or "",
                )
                for c in results["failed_checks"]
            ],
            checked={
                (c["file_path"].lstrip("/"), c["resource"])
                for c in results["passed_checks"] + results["failed_checks"]
            },
        )


@pytest.fixture(scope="session")
def checkov(tmp_path_factory: pytest.TempPathFactory) -> Checkov:
    path = runnable("checkov", find_checkov(), cached_checkov())
    return Checkov(path, tmp_path_factory.mktemp("checkov-home"))


def values_args(name: str) -> list[str]:
    return [] if name == "default" else ["--values", str(CHART / "ci" / f"{name}.yaml")]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    path = runnable("helm", find_helm(), cached_helm())
    return Helm(path, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> dict[str, Rendered]:
    """Every values set, rendered once (CRDs included, the monitoring API present)."""
    out: dict[str, Rendered] = {}
    for name in VALUE_SETS:
        result = helm.template(
            *values_args(name), "--include-crds", "--api-versions", MONITORING_API
        )
        assert result.returncode == 0, f"helm template ({name}) failed:\n{result.stderr}"
        out[name] = Rendered(
            name=name,
            stdout=result.stdout,
            objects=[d for d in yaml.safe_load_all(result.stdout) if d],
        )
    return out


NOTES_AS_OBJECT = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | toJson }}
"""


@dataclass
class ChartCopy:
    """A copy of the chart with test-only additions, rendered with the same helm.

    ``helm template`` never prints NOTES.txt and ``helm install --dry-run`` cannot be told
    which APIs the cluster has; the copy renders NOTES.txt inside a ConfigMap instead, so every
    branch (KubeRay present or not, monitoring API present or not) can be checked.
    """

    helm: Helm
    path: Path

    def notes(self, *args: str) -> str:
        result = self.helm.template(
            "--show-only", "templates/zz-notes.yaml", *args, chart=self.path
        )
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)["data"]["notes"]


def copy_chart(helm: Helm, where: Path, dashboards: dict[str, Any]) -> ChartCopy:
    """The chart, plus NOTES.txt as an object, with the given dashboards (name -> JSON) instead
    of its own."""
    path = where / "modelgrid"
    shutil.copytree(CHART, path)
    shutil.copy(CHART / "templates" / "NOTES.txt", path / "notes-under-test.txt")
    (path / "templates" / "zz-notes.yaml").write_text(NOTES_AS_OBJECT)
    for shipped in (path / "dashboards").glob("*.json"):
        shipped.unlink()  # only the given dashboards
    for name, dashboard in dashboards.items():
        (path / "dashboards" / name).write_text(json.dumps(dashboard, indent=2))
    return ChartCopy(helm, path)


DASHBOARDS = {
    "overview.json": {"title": "modelgrid overview", "uid": "modelgrid-overview", "panels": []},
    "Per_Model.json": {"title": "modelgrid model", "uid": "modelgrid-model", "panels": []},
}
"""Stand-ins for the generated dashboards: names that exercise the ConfigMap naming."""


@pytest.fixture(scope="session")
def chart_copy(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> ChartCopy:
    return copy_chart(helm, tmp_path_factory.mktemp("chart"), DASHBOARDS)
