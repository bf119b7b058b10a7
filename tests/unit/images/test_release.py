"""The release workflow (``.github/workflows/release.yml``), the chart and the operator name the
same images: what one names, the workflow builds, at the chart's appVersion. The workflow cannot
run here: it is read as data (tests/unit/platforms/test_workflow.py lints every workflow with
actionlint)."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from images_support import (
    RELEASE,
    ROOT,
    local_name,
    published,
    stages,
)

pytestmark = pytest.mark.unit

CHART = yaml.safe_load((ROOT / "charts/modelgrid/Chart.yaml").read_text())
APP_VERSION = CHART["appVersion"]


def test_release_pins_every_action_by_commit():
    uses = re.findall(r"uses:\s*(\S+)", RELEASE.read_text())
    assert len(uses) >= 6
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


def test_release_runs_on_version_tags_and_checks_the_tag():
    workflow = yaml.safe_load(RELEASE.read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on == {"push": {"tags": ["v*"]}}
    check = "\n".join(s.get("run", "") for s in workflow["jobs"]["version"]["steps"])
    for source in ("pyproject.toml", "charts/modelgrid/Chart.yaml", "appVersion"):
        assert source in check


def test_release_chart_version_and_package_version_agree():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert CHART["version"] == APP_VERSION == version


def test_release_builds_every_target_of_the_dockerfile_it_names():
    targets = [image.target for image in published(APP_VERSION)]
    assert len(targets) == len(set(targets))
    found = stages()
    for target in targets:
        assert target in found, f"release.yml builds {target}, which images/Dockerfile lacks"
    # A final stage is one no other stage builds on (FROM) or copies from (COPY --from).
    used = {stage.base for stage in found.values()} | {
        source
        for stage in found.values()
        for instruction in stage.instructions
        for source in re.findall(r"--from=(\S+)", instruction)
    }
    finals = set(found) - used
    assert finals == set(targets), "a final stage of images/Dockerfile is never published"


def test_release_platforms():
    platforms = {image.target: set(image.platforms) for image in published(APP_VERSION)}
    assert platforms["modelgrid"] == {"linux/amd64", "linux/arm64"}
    assert platforms["serving-cuda"] == {"linux/amd64"}
    assert platforms["serving-apple"] == {"linux/arm64"}  # Apple silicon nodes
    assert "linux/amd64" in platforms["serving-cpu"]


def test_release_signs_and_attaches_an_sbom():
    job = yaml.safe_load(RELEASE.read_text())["jobs"]["images"]
    assert job["permissions"]["id-token"] == "write"  # keyless signing
    build = next(s for s in job["steps"] if s.get("id") == "build")
    assert build["with"]["sbom"] is True and build["with"]["push"] is True
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert 'cosign sign --yes "$REGISTRY/${IMAGE%%:*}@$DIGEST"' in runs
    chart = "\n".join(
        s.get("run", "") for s in yaml.safe_load(RELEASE.read_text())["jobs"]["chart"]["steps"]
    )
    assert '"$helm" push' in chart and "oci://$REGISTRY/charts" in chart


def test_release_publishes_every_image_the_operator_renders_by_default():
    from modelgrid_operator import __version__
    from modelgrid_operator.settings import RenderSettings

    assert __version__ == APP_VERSION
    references = {image.reference for image in published(APP_VERSION)}
    settings = RenderSettings()
    defaults = {settings.cuda_image, settings.cpu_image, settings.apple_image, settings.mlx_image}
    assert defaults <= references, defaults - references


def test_release_publishes_the_charts_default_image():
    values = yaml.safe_load((ROOT / "charts/modelgrid/values.yaml").read_text())
    assert values["image"]["tag"] == ""  # the helper defaults it to appVersion
    helper = (ROOT / "charts/modelgrid/templates/_helpers.tpl").read_text()
    assert "| default .root.Chart.AppVersion }}" in helper
    default = f"{values['image']['repository']}:{APP_VERSION}"
    assert default in {image.reference for image in published(APP_VERSION)}


def test_release_names_equal_the_local_builds():
    """`make images` builds what the release publishes, under localhost/ instead of the
    registry."""
    registry = yaml.safe_load(RELEASE.read_text())["env"]["REGISTRY"]
    for image in published("$version"):
        local = local_name(image.target)
        assert local == image.reference.replace(registry, "localhost/modelgrid", 1), image
