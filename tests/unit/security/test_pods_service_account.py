"""No rendered container holds a Kubernetes API token, except KubeRay's autoscaler.

Trigger (issue 15, checkov CKV_K8S_38): every rendered pod mounted its service account's token
into every container. Ray, vLLM and mlx-lm never call the API, so a process in a model's pod
(a tenant's model code, a vLLM exploit) had a credential it never needed. Now no pod automounts
the token; the head of an autoscaled model carries a projected token that only KubeRay's
autoscaler sidecar mounts, through ``autoscalerOptions.volumeMounts``.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import make_model, pool
from fidelity_support.admission import crd_schema
from fidelity_support.kuberay import RAYSERVICES, kuberay_crd
from fidelity_support.openapi import schema_errors
from modelgrid_operator.render import render_rayservices
from modelgrid_operator.render.security import API_ACCESS_PATH, API_ACCESS_VOLUME
from modelgrid_operator.settings import RenderSettings
from rendered import pool_rayservice

pytestmark = [pytest.mark.unit, pytest.mark.security]

SETTINGS = RenderSettings()


def _templates(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["workerGroupSpecs"]
    ]


def _mounts_token(container: dict[str, Any]) -> bool:
    return any(
        m["name"] == API_ACCESS_VOLUME or m["mountPath"].startswith("/var/run/secrets")
        for m in container.get("volumeMounts", [])
    )


@pytest.mark.parametrize("accelerator", ["nvidia", "cpu", "apple"])
@pytest.mark.parametrize("uri", ["hf://org/demo-1b", "builtin://tiny-llama"])
def test_service_account_token_mounted_in_no_container_of_a_fixed_size_model(accelerator, uri):
    model = make_model(model={"uri": uri}, engine="auto", pools=[pool("p", accelerator)])
    rayservice = pool_rayservice(model, settings=SETTINGS)
    assert "autoscalerOptions" not in rayservice["spec"]["rayClusterConfig"]
    for template in _templates(rayservice):
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert all(v["name"] != API_ACCESS_VOLUME for v in spec["volumes"])
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            assert not _mounts_token(container), container["name"]


def test_service_account_token_only_for_the_autoscaler_of_an_autoscaled_model():
    model = make_model(pools=[pool("gpu", "nvidia", maxReplicas=4), pool("mac", "apple")])
    autoscaled, fixed = render_rayservices(model, settings=SETTINGS)
    cluster = autoscaled["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    # The fixed pool's own cluster runs no autoscaler, so its pods hold no token at all.
    assert "autoscalerOptions" not in fixed["spec"]["rayClusterConfig"]
    head, *workers = _templates(autoscaled)
    workers += _templates(fixed)
    # The head pod holds the projected token as a volume; none of its own containers mounts it.
    (volume,) = [v for v in head["spec"]["volumes"] if v["name"] == API_ACCESS_VOLUME]
    sources = volume["projected"]["sources"]
    assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}} in sources
    assert head["spec"]["automountServiceAccountToken"] is False
    assert not any(_mounts_token(c) for c in head["spec"]["containers"])
    # KubeRay appends these mounts to the autoscaler container it adds to the head.
    assert cluster["autoscalerOptions"]["volumeMounts"] == [
        {"name": API_ACCESS_VOLUME, "mountPath": API_ACCESS_PATH, "readOnly": True}
    ]
    for worker in workers:
        assert worker["spec"]["automountServiceAccountToken"] is False
        assert all(v["name"] != API_ACCESS_VOLUME for v in worker["spec"]["volumes"])


def test_service_account_token_autoscaler_mount_is_in_kuberays_schema():
    """``autoscalerOptions.volumeMounts`` is KubeRay's own field: a strict validation against its
    CRD would name a field it does not have."""
    model = make_model(pools=[pool("gpu", "nvidia", maxReplicas=4)])
    rayservice = pool_rayservice(model, settings=SETTINGS)
    schema = crd_schema(kuberay_crd(RAYSERVICES), "v1")
    assert schema_errors(rayservice, schema, strict=True) == []
    rayservice["spec"]["rayClusterConfig"]["autoscalerOptions"]["volumeMount"] = []
    assert schema_errors(rayservice, schema, strict=True) != []
