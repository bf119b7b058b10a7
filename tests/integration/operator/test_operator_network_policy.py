"""The operator applies each model's NetworkPolicy next to its RayService, on an emulated API.

kmock stores what is written and validates nothing: the policy's schema is checked in
``tests/unit/security/test_network_policy.py``; here, that the real operator creates it, owned
by the model, restores it when someone opens it up, leaves alone one it does not own, and
writes nothing for a model its policy refuses.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kubernetes
import pytest
from emulated_cluster import NAMESPACE
from modelgrid_operator.render import render_network_policy
from modelgrid_operator.settings import RenderSettings
from modelgrid_operator.validation import parse_model
from polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.security]

NP = "networking.k8s.io/v1/networkpolicies"
SPEC = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [{"name": "cpu", "accelerator": "cpu", "minReplicas": 1}],
}


def expected_spec() -> dict[str, Any]:
    model = parse_model(
        {
            "apiVersion": "modelgrid.io/v1alpha1",
            "kind": "InferenceModel",
            "metadata": {"name": "demo", "namespace": NAMESPACE},
            "spec": SPEC,
        }
    )
    return render_network_policy(model, settings=RenderSettings())["spec"]


def networking(cluster: Any) -> kubernetes.client.NetworkingV1Api:
    return kubernetes.client.NetworkingV1Api(cluster.api)


async def test_operator_network_policy_created_owned_and_restored(cluster, operator):
    await operator()
    await cluster.create_model("demo", SPEC, uid="uid-1")
    policy = await eventually(lambda: cluster.get(NP, "demo"), what="NetworkPolicy created")
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert policy["spec"] == expected_spec()
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")

    # Someone opens the model to every pod: the next reconcile closes it again.
    await asyncio.to_thread(
        networking(cluster).patch_namespaced_network_policy,
        "demo",
        NAMESPACE,
        {"spec": {"ingress": [{}]}},
    )
    await eventually(
        lambda: cluster.get(NP, "demo")["spec"] == expected_spec(), what="policy restored"
    )


async def test_operator_network_policy_of_someone_else_is_left_alone(cluster, operator):
    theirs = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "demo", "namespace": NAMESPACE, "uid": "np-theirs"},
        "spec": {"podSelector": {"matchLabels": {"app": "theirs"}}, "policyTypes": ["Ingress"]},
    }
    await asyncio.to_thread(networking(cluster).create_namespaced_network_policy, NAMESPACE, theirs)
    await operator()
    await cluster.create_model("demo", SPEC, uid="uid-1")
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    assert cluster.get(NP, "demo")["spec"] == theirs["spec"]
    assert cluster.writes("/networkpolicies/demo", "PATCH") == []


async def test_operator_model_refused_by_policy_gets_no_children(cluster, operator):
    await operator()
    spec = {**SPEC, "model": {"uri": "/var/lib/kubelet"}}
    await cluster.create_model("demo", spec, uid="uid-1")
    await eventually(
        lambda: any(
            c["type"] == "SpecValid" and c["status"] == "False"
            for c in ((cluster.model("demo") or {}).get("status") or {}).get("conditions", [])
        ),
        what="SpecValid False",
    )
    conditions = cluster.model("demo")["status"]["conditions"]
    message = next(c["message"] for c in conditions if c["type"] == "SpecValid")
    assert "spec.model.uri" in message and "MODELGRID_ALLOWED_HOST_PATHS" in message
    assert cluster.get(NP, "demo") is None
    assert cluster.rayservice("demo") is None
