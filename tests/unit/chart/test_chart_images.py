"""With default values, the chart names only images the release workflow publishes."""

from __future__ import annotations

import pytest
from images_support import published

pytestmark = pytest.mark.unit


def _images(objects) -> set[str]:
    found = set()
    for obj in objects.objects:
        spec = obj.get("spec", {})
        spec = spec if obj["kind"] == "Pod" else spec.get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            found.add(container["image"])
    return found


def test_chart_default_images_are_published(rendered):
    from modelgrid_operator import __version__

    images = _images(rendered["default"])
    assert images  # the operator's and the gateway's Deployments
    assert images <= {image.reference for image in published(__version__)}, images
