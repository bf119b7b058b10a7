"""CPU and memory of every rendered container (docs/operator.md#resources).

Checkov asks every container for CPU and memory requests and limits (CKV_K8S_10..13). The rule:
an engine container gets what its pool asks for, guaranteed (a request alone is also the limit,
a limit alone also the request, neither: the settings' defaults); the containers around it (the
head, the Apple worker that only proxies, the init container) get fixed amounts from settings.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import make_model, pool
from modelgrid_operator import api
from modelgrid_operator.render import render_rayservices
from modelgrid_operator.render.pods import engine_resources
from modelgrid_operator.settings import RenderSettings

pytestmark = pytest.mark.unit

SETTINGS = RenderSettings(engine_cpu="3", engine_memory="7Gi")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (  # requests only: the limits are the requests (memory the engine may not outgrow)
            {"requests": {"cpu": "8", "memory": "32Gi"}},
            {"requests": {"cpu": "8", "memory": "32Gi"}, "limits": {"cpu": "8", "memory": "32Gi"}},
        ),
        (  # limits only: the requests are the limits, as Kubernetes would default them
            {"limits": {"cpu": 4, "memory": "16Gi"}},
            {"requests": {"cpu": 4, "memory": "16Gi"}, "limits": {"cpu": 4, "memory": "16Gi"}},
        ),
        (  # nothing: the settings' defaults
            {},
            {"requests": {"cpu": "3", "memory": "7Gi"}, "limits": {"cpu": "3", "memory": "7Gi"}},
        ),
        (  # a pool that lets its engine burst keeps its higher CPU limit
            {"requests": {"cpu": "8", "memory": "32Gi"}, "limits": {"cpu": "16"}},
            {"requests": {"cpu": "8", "memory": "32Gi"}, "limits": {"cpu": "16", "memory": "32Gi"}},
        ),
        (  # other resources pass through untouched
            {"requests": {"memory": "6Gi", "ephemeral-storage": "20Gi"}},
            {
                "requests": {"memory": "6Gi", "ephemeral-storage": "20Gi", "cpu": "3"},
                "limits": {"memory": "6Gi", "cpu": "3"},
            },
        ),
    ],
)
def test_render_resources_engine_rule(given, expected):
    assert engine_resources(api.Resources.model_validate(given), SETTINGS) == expected


def test_render_resources_engine_gpus_are_requested_and_limited():
    found = engine_resources(api.Resources(), SETTINGS, gpus=4)
    assert found["requests"]["nvidia.com/gpu"] == found["limits"]["nvidia.com/gpu"] == 4


def _containers(services: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups = []
    for rayservice in services:
        cluster = rayservice["spec"]["rayClusterConfig"]
        for g in cluster["workerGroupSpecs"]:
            groups += [(f"head@{g['groupName']}", cluster["headGroupSpec"]), (g["groupName"], g)]
    return {
        f"{name}/{c['name']}": c
        for name, group in groups
        for c in [
            *group["template"]["spec"].get("initContainers", []),
            *group["template"]["spec"]["containers"],
        ]
    }


def test_render_resources_every_container_has_cpu_and_memory_requests_and_limits():
    model = make_model(
        model={"uri": "builtin://tiny-llama"},
        engine="auto",
        pools=[pool("gpu", "nvidia"), pool("cpu", "cpu"), pool("mac", "apple")],
    )
    containers = _containers(render_rayservices(model, settings=SETTINGS))
    assert {"gpu/generate-model", "mac/mlx-server", "mac/ray-worker"} <= set(containers)
    for name, container in containers.items():
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)


def test_render_resources_around_the_engines_come_from_settings():
    settings = RenderSettings(
        head_cpu="2", head_cpu_limit="3", head_memory="6Gi",
        apple_worker_cpu="500m", apple_worker_cpu_limit="1", apple_worker_memory="1Gi",
    )  # fmt: skip
    model = make_model(pools=[pool("mac", "apple", resources={"requests": {"memory": "24Gi"}})])
    containers = _containers(render_rayservices(model, settings=settings))
    assert containers["head@mac/ray-head"]["resources"] == {
        "requests": {"cpu": "2", "memory": "6Gi"},
        "limits": {"cpu": "3", "memory": "6Gi"},
    }
    assert containers["mac/ray-worker"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    sidecar = containers["mac/mlx-server"]["resources"]
    assert sidecar["requests"]["memory"] == sidecar["limits"]["memory"] == "24Gi"
