"""The chart ships the CRD that the typed API generates, byte for byte, and the same version."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from chart_support import CHART, ROOT
from fidelity_support import SUPPORTED_KUBERNETES
from modelgrid_operator import __version__

pytestmark = pytest.mark.unit


def test_chart_crds_are_the_generated_ones():
    generated = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    shipped = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert shipped == generated, "charts/modelgrid/crds/ must hold exactly the files of crds/"
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
            f"charts/modelgrid/crds/{name} differs from crds/{name}: "
            f"cp crds/{name} charts/modelgrid/crds/"
        )


def test_chart_crds_are_files_not_links():
    for path in (CHART / "crds").iterdir():
        assert path.is_file() and not path.is_symlink(), f"{path.name}: helm package needs a file"


def test_chart_renders_the_crd(rendered):
    (crd,) = rendered["default"].by_kind["CustomResourceDefinition"]
    shipped = yaml.safe_load((ROOT / "crds" / "modelgrid.io_inferencemodels.yaml").read_text())
    assert crd == shipped


def test_chart_app_version_is_the_package_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == __version__ == project["version"]
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == f">={SUPPORTED_KUBERNETES[0]}.0-0"
    assert "dependencies" not in chart  # KubeRay is a prerequisite (README.md says why)


def test_chart_packages_with_its_crds(helm, tmp_path):
    import tarfile

    result = helm.run("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("modelgrid-*.tgz")
    with tarfile.open(package) as archive:
        names = set(archive.getnames())
        crd = archive.extractfile("modelgrid/crds/modelgrid.io_inferencemodels.yaml")
        assert crd is not None
        assert crd.read() == (ROOT / "crds" / "modelgrid.io_inferencemodels.yaml").read_bytes()
    assert "modelgrid/values.schema.json" in names
    assert not [n for n in names if n.startswith("modelgrid/ci/")]  # examples stay in the repo
    rendered = helm.template(chart=package)
    assert rendered.returncode == 0, rendered.stderr
