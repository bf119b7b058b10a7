"""Every Serve replica in a cluster serves its metrics on a worker-pod port that the chart's
PodMonitor scrapes: the port name the chart asks for, the port the application config opens."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from factories import make_model, pool
from modelgrid_operator.render import render_rayservice
from modelgrid_operator.settings import RenderSettings

pytestmark = pytest.mark.unit

VALUES = Path(__file__).resolve().parents[3] / "charts" / "modelgrid" / "values.yaml"


@pytest.mark.parametrize(
    "pools",
    [
        [pool("gpu", "nvidia")],
        [pool("cpu", "cpu")],
        [pool("gpu", "nvidia"), pool("mac", "apple")],
    ],
)
def test_render_replicas_serve_metrics_where_the_podmonitor_scrapes(pools) -> None:
    settings = RenderSettings(metrics_port=9123)
    rs = render_rayservice(make_model(pools=pools), settings=settings)
    scraped = yaml.safe_load(VALUES.read_text())["monitoring"]["podMonitor"]["port"]
    applications = yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"]
    assert len(applications) == len(pools)
    for application in applications:
        assert application["args"]["metrics_port"] == 9123
    groups = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert len(groups) == len(pools)
    for group in groups:
        (worker,) = [
            c for c in group["template"]["spec"]["containers"] if c["name"] == "ray-worker"
        ]
        assert {"name": scraped, "containerPort": 9123} in worker["ports"], group["groupName"]
