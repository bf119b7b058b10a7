"""Tenancy on an emulated API: a tenant in a second namespace applies an InferenceModel with
the servedModelName of the first namespace's model. Its model gets NameConflict and the owner
keeps its name; sharing works only when both sides declare it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from emulated_cluster import IM, NAMESPACE
from modelgrid_operator import api

pytestmark = [pytest.mark.integration, pytest.mark.security]

TEAM_B = "team-b"

OWNER = yaml.safe_load(
    """
apiVersion: modelgrid.io/v1alpha1
kind: InferenceModel
metadata:
  name: llama
  namespace: default
  uid: uid-llama
  resourceVersion: "1"
  generation: 1
  creationTimestamp: "2026-12-01T10:00:00Z"
spec:
  model: {uri: "hf://meta-llama/Llama-3.1-8B-Instruct"}
  servedModelName: llama-3.1-8b-instruct
  pools: [{name: cpu, accelerator: cpu}]
"""
)

TENANT = yaml.safe_load(
    """
apiVersion: modelgrid.io/v1alpha1
kind: InferenceModel
metadata:
  name: my-llama
  namespace: team-b
  uid: uid-my-llama
  resourceVersion: "1"
  generation: 1
  creationTimestamp: "2026-12-02T10:00:00Z"
spec:
  model: {uri: "hf://team-b/backdoored-llama"}
  servedModelName: llama-3.1-8b-instruct
  pools: [{name: cpu, accelerator: cpu}]
"""
)
from polling import eventually


async def create(cluster, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    await asyncio.to_thread(
        cluster.custom.create_namespaced_custom_object,
        api.GROUP,
        api.VERSION,
        meta["namespace"],
        api.PLURAL,
        body,
    )


async def patch(cluster, namespace: str, name: str, body: dict[str, Any]) -> None:
    await asyncio.to_thread(
        cluster.custom.patch_namespaced_custom_object,
        api.GROUP,
        api.VERSION,
        namespace,
        api.PLURAL,
        name,
        body,
    )


def condition(cluster, namespace: str, name: str, kind: str) -> dict[str, Any]:
    try:
        obj = cluster.kmock.objects[IM, namespace, name]
    except KeyError:
        return {}
    status = dict(obj.raw).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


async def test_tenancy_second_namespace_with_the_same_served_name_gets_name_conflict(
    cluster, operator
):
    await operator(namespaces=(NAMESPACE, TEAM_B))
    await create(cluster, OWNER)
    await create(cluster, TENANT)
    await eventually(
        lambda: condition(cluster, TEAM_B, "my-llama", "NamesClaimed").get("status") == "False",
        what="NamesClaimed False on the tenant's model",
    )
    names = condition(cluster, TEAM_B, "my-llama", "NamesClaimed")
    assert names["reason"] == "NameConflict"
    assert "belongs to namespace default" in names["message"]
    assert "InferenceModel default/llama" in names["message"]
    ready = condition(cluster, TEAM_B, "my-llama", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    owner = await eventually(
        lambda: condition(cluster, NAMESPACE, "llama", "NamesClaimed"), what="owner's condition"
    )
    assert (owner["status"], owner["reason"]) == ("True", "NamesHeld")

    # Both sides opt in: the tenant's model holds the name too.
    await patch(cluster, NAMESPACE, "llama", {"spec": {"shareNamesWith": [TEAM_B]}})
    await patch(cluster, TEAM_B, "my-llama", {"spec": {"shareNamesWith": [NAMESPACE]}})
    await eventually(
        lambda: condition(cluster, TEAM_B, "my-llama", "NamesClaimed").get("status") == "True",
        what="NamesClaimed True once both share",
    )


async def test_tenancy_opt_in_by_the_claimant_alone_is_not_enough(cluster, operator):
    await operator(namespaces=(NAMESPACE, TEAM_B))
    await create(cluster, OWNER)
    tenant = {**TENANT, "spec": {**TENANT["spec"], "shareNamesWith": [NAMESPACE]}}
    await create(cluster, tenant)
    await eventually(
        lambda: (
            condition(cluster, TEAM_B, "my-llama", "NamesClaimed").get("reason") == "NameConflict"
        ),
        what="NameConflict despite a one-sided opt-in",
    )
