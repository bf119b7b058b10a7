"""Tenancy on an emulated API: a tenant in a second namespace applies an InferenceModel with
the servedModelName of the first namespace's model. Its model gets NameConflict and the owner
keeps its name; sharing works only when both sides declare it."""

from __future__ import annotations

from typing import Any

import pytest
from emulated_cluster import NAMESPACE, Cluster, inference_model
from modelgrid_operator import api
from polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.security]

TEAM_B = "team-b"

SPEC = {
    "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct"},
    "servedModelName": "llama-3.1-8b-instruct",
    "pools": [{"name": "cpu", "accelerator": "cpu"}],
}
OWNER = inference_model("llama", SPEC, creationTimestamp="2026-12-01T10:00:00Z")
TENANT = inference_model(  # the same served name, a day later, from another namespace
    "my-llama",
    {**SPEC, "model": {"uri": "hf://team-b/backdoored-llama"}},
    namespace=TEAM_B,
    creationTimestamp="2026-12-02T10:00:00Z",
)


async def create(cluster: Cluster, body: dict[str, Any]) -> None:
    namespace = body["metadata"]["namespace"]
    await cluster.custom_objects("create", api.PLURAL, body, namespace=namespace)


async def patch(cluster: Cluster, namespace: str, name: str, body: dict[str, Any]) -> None:
    await cluster.custom_objects("patch", api.PLURAL, name, body, namespace=namespace)


async def test_tenancy_second_namespace_with_the_same_served_name_gets_name_conflict(
    cluster, operator
):
    await operator(namespaces=(NAMESPACE, TEAM_B))
    await create(cluster, OWNER)
    await create(cluster, TENANT)
    await eventually(
        lambda: cluster.condition("my-llama", "NamesClaimed", TEAM_B).get("status") == "False",
        what="NamesClaimed False on the tenant's model",
    )
    names = cluster.condition("my-llama", "NamesClaimed", TEAM_B)
    assert names["reason"] == "NameConflict"
    assert "belongs to namespace default" in names["message"]
    assert "InferenceModel default/llama" in names["message"]
    ready = cluster.condition("my-llama", "Ready", TEAM_B)
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    owner = await eventually(
        lambda: cluster.condition("llama", "NamesClaimed", NAMESPACE), what="owner's condition"
    )
    assert (owner["status"], owner["reason"]) == ("True", "NamesHeld")

    # Both sides opt in: the tenant's model holds the name too.
    await patch(cluster, NAMESPACE, "llama", {"spec": {"shareNamesWith": [TEAM_B]}})
    await patch(cluster, TEAM_B, "my-llama", {"spec": {"shareNamesWith": [NAMESPACE]}})
    await eventually(
        lambda: cluster.condition("my-llama", "NamesClaimed", TEAM_B).get("status") == "True",
        what="NamesClaimed True once both share",
    )


async def test_tenancy_opt_in_by_the_claimant_alone_is_not_enough(cluster, operator):
    await operator(namespaces=(NAMESPACE, TEAM_B))
    await create(cluster, OWNER)
    tenant = {**TENANT, "spec": {**TENANT["spec"], "shareNamesWith": [NAMESPACE]}}
    await create(cluster, tenant)
    await eventually(
        lambda: (
            cluster.condition("my-llama", "NamesClaimed", TEAM_B).get("reason") == "NameConflict"
        ),
        what="NameConflict despite a one-sided opt-in",
    )
