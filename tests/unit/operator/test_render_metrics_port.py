"""Every Serve replica in a cluster serves its metrics on a worker-pod port that the chart's
PodMonitor scrapes: the port name the chart asks for, the port the application config opens.
Ray's own metrics port is the one KubeRay names ``metrics``; ours never takes that name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from factories import make_model, pool
from modelgrid_operator.render import render_rayservices
from modelgrid_operator.settings import RenderSettings
from pydantic import ValidationError

pytestmark = pytest.mark.unit

VALUES = Path(__file__).resolve().parents[3] / "charts" / "modelgrid" / "values.yaml"
POOLS = [
    [pool("gpu", "nvidia")],
    [pool("cpu", "cpu")],
    [pool("gpu", "nvidia"), pool("mac", "apple")],
]


def _ray_containers(services: list[dict]) -> dict[str, dict]:
    """The Ray container of each pool's head and worker group, by group name."""
    found = {}
    for rayservice in services:
        cluster = rayservice["spec"]["rayClusterConfig"]
        for g in cluster["workerGroupSpecs"]:
            found[f"head@{g['groupName']}"] = cluster["headGroupSpec"]["template"]["spec"][
                "containers"
            ][0]
            found[g["groupName"]] = g["template"]["spec"]["containers"][0]
    return found


def _start_params(services: list[dict]) -> dict[str, dict]:
    found = {}
    for rayservice in services:
        cluster = rayservice["spec"]["rayClusterConfig"]
        for g in cluster["workerGroupSpecs"]:
            found[f"head@{g['groupName']}"] = cluster["headGroupSpec"]["rayStartParams"]
            found[g["groupName"]] = g["rayStartParams"]
    return found


@pytest.mark.parametrize("pools", POOLS)
def test_render_replicas_serve_metrics_where_the_podmonitor_scrapes(pools) -> None:
    settings = RenderSettings(metrics_port=9123)
    services = render_rayservices(make_model(pools=pools), settings=settings)
    scraped = yaml.safe_load(VALUES.read_text())["monitoring"]["podMonitor"]["port"]
    applications = [
        a for rs in services for a in yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"]
    ]
    assert len(applications) == len(pools)
    for application in applications:
        assert application["args"]["metrics_port"] == 9123
    groups = [g for rs in services for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]]
    assert len(groups) == len(pools)
    for group in groups:
        (worker,) = [
            c for c in group["template"]["spec"]["containers"] if c["name"] == "ray-worker"
        ]
        assert {"name": scraped, "containerPort": 9123} in worker["ports"], group["groupName"]


@pytest.mark.parametrize("pools", POOLS)
def test_render_every_ray_container_declares_rays_metrics_port_as_kuberay_names_it(pools) -> None:
    """KubeRay's ``setMissingRayStartParams`` (common/pod.go, v1.6/v1.7) sets Ray's
    ``metrics-export-port`` to 8080 on every node, and ``DefaultHeadPodTemplate`` /
    ``DefaultWorkerPodTemplate`` add a container port named ``metrics`` at 8080 only when the
    Ray container has none of that name. So the port named ``metrics`` must be Ray's 8080 on
    every Ray container, said in the template, and no port of ours may carry that name."""
    rs = render_rayservices(make_model(pools=pools), settings=RenderSettings())
    containers = _ray_containers(rs)
    assert len(containers) == 2 * len(pools)  # a head and a worker group per pool
    for group, container in containers.items():
        named = [p for p in container["ports"] if p["name"] == "metrics"]
        assert named == [{"name": "metrics", "containerPort": 8080}], group
        numbers = [p["containerPort"] for p in container["ports"]]
        assert len(numbers) == len(set(numbers)), group
    for group, params in _start_params(rs).items():
        assert params["metrics-export-port"] == "8080", group


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"metrics_port": 8080}, "metrics_port 8080 is Ray's own metrics port"),
        ({"serve_port": 8080}, "serve_port 8080 is Ray's own metrics port"),
        ({"metrics_port": 52365}, "metrics_port 52365 is Ray's dashboard agent"),
        ({"metrics_port": 8265}, "metrics_port 8265 is Ray's dashboard port"),
        ({"metrics_port": 8000}, "serve_port, metrics_port and mlx_port must differ"),
        ({"mlx_port": 8090}, "serve_port, metrics_port and mlx_port must differ"),
    ],
)
def test_settings_refuse_a_port_that_collides_in_the_ray_container(overrides, words) -> None:
    """Our metrics on 8080 would be scraped as Ray's (KubeRay's ``metrics`` port, set by
    ``setMissingRayStartParams``) and two listeners on one port fail at start."""
    with pytest.raises(ValidationError, match=words):
        RenderSettings(**overrides)
