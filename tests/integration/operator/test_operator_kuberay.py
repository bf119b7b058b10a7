"""The operator against the states KubeRay's controller puts RayServices and RayClusters in.

kmock runs no KubeRay: each test writes what KubeRay v1.6/v1.7 would write (application
statuses, active and pending cluster names, RayCluster objects copied from
``rayClusterConfig``), names the KubeRay function whose behaviour it plays, and asserts on the
operator's writes and the model's status.
"""

from __future__ import annotations

import asyncio
import copy

import pytest
from emulated_cluster import NAMESPACE
from polling import eventually

pytestmark = pytest.mark.integration

TWO_POOLS = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [
        {"name": "cpu", "accelerator": "cpu", "minReplicas": 1},
        {"name": "mac", "accelerator": "apple", "minReplicas": 1},
    ],
}


def _pools(cluster, name: str) -> dict[str, dict]:
    return {
        p["name"]: p for p in ((cluster.model(name) or {}).get("status") or {}).get("pools", [])
    }


async def test_kuberay_one_pool_deploy_failed_leaves_the_other_pool_serving(cluster, operator):
    """``getAndCheckServeStatus`` counts a RayService ready only when every application in it
    is RUNNING, and KubeRay switches its ``<name>-serve-svc`` only then; a DEPLOY_FAILED
    application is not resubmitted until the config text changes. So the pools must be apart:
    the CPU pool's RayService runs its one application, the Mac pool's has DEPLOY_FAILED (no Mac
    node can run it), and the CPU pool serves through its own Service meanwhile."""
    await operator()
    await cluster.create_model("duo", TWO_POOLS)
    await eventually(
        lambda: cluster.rayservice("duo", "cpu") and cluster.rayservice("duo", "mac"),
        what="a RayService per pool",
    )
    for pool in ("cpu", "mac"):
        rs = cluster.rayservice("duo", pool)
        groups = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
        assert [g["groupName"] for g in groups] == [pool]
        assert rs["metadata"]["labels"]["modelgrid.io/pool"] == pool
        assert rs["metadata"]["labels"]["modelgrid.io/model"] == "duo"
    await cluster.kuberay_serves("duo", cluster="duo-cpu-c1", pools={"cpu": 1}, apps=("cpu",))
    await cluster.kuberay_serves(
        "duo", cluster="duo-mac-c1", pools={"mac": 1}, apps=("mac",), app_status="DEPLOY_FAILED"
    )
    await eventually(lambda: cluster.phase("duo") == "Degraded", what="phase Degraded")
    pools = _pools(cluster, "duo")
    assert (pools["cpu"]["readyReplicas"], pools["mac"]["readyReplicas"]) == (1, 0)
    cpu_service = cluster.rs_name("duo", "cpu")
    assert pools["cpu"]["endpoint"] == f"http://{cpu_service}-serve-svc.{NAMESPACE}.svc:8000"
    assert pools["cpu"]["rayService"] == cpu_service
    ready = cluster.condition("duo", "Ready")
    assert (ready["reason"], ready["message"]) == (
        "DeployFailed",
        "pool mac: the Serve application is DEPLOY_FAILED",
    )
    # The failed pool's RayService is not rewritten (a rewrite of the same config would not
    # resubmit it either), nor is the serving one.
    written = len(cluster.writes("/rayservices", "PATCH", "PUT", "DELETE"))
    await cluster.reconciled("duo")
    assert len(cluster.writes("/rayservices", "PATCH", "PUT", "DELETE")) == written


async def test_kuberay_model_of_an_earlier_operator_moves_to_a_rayservice_per_pool(
    cluster, operator
):
    """An operator before one RayService per pool made one RayService named after the model for
    all pools. It keeps serving until every pool's own RayService serves (KubeRay's
    ``getAndCheckServeStatus``: RUNNING), then it is deleted; a RayService labelled with the
    model that the model does not own is never touched."""
    await cluster.create_model("duo", TWO_POOLS, uid="uid-duo")
    labels = {"modelgrid.io/model": "duo"}
    owner = {"apiVersion": "modelgrid.io/v1alpha1", "kind": "InferenceModel", "name": "duo",
             "uid": "uid-duo", "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    legacy = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": "duo",
            "namespace": NAMESPACE,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": {"serveConfigV2": "applications: []", "rayClusterConfig": {}},
    }
    stranger = copy.deepcopy(legacy)
    stranger["metadata"].update(name="duo-by-hand", ownerReferences=[])
    for body in (legacy, stranger):
        await asyncio.to_thread(
            cluster.custom.create_namespaced_custom_object,
            "ray.io", "v1", NAMESPACE, "rayservices", body,
        )  # fmt: skip
    await operator()
    await eventually(
        lambda: cluster.rayservice("duo", "cpu") and cluster.rayservice("duo", "mac"),
        what="a RayService per pool",
    )
    await cluster.kuberay_serves("duo", cluster="c-cpu", pools={"cpu": 1}, apps=("cpu",))
    await cluster.reconciled("duo")
    assert cluster.get("ray.io/v1/rayservices", "duo") is not None, "deleted before all serve"
    await cluster.kuberay_serves("duo", cluster="c-mac", pools={"mac": 1}, apps=("mac",))
    await eventually(
        lambda: cluster.get("ray.io/v1/rayservices", "duo") is None, what="legacy RayService gone"
    )
    await eventually(lambda: cluster.phase("duo") == "Ready", what="phase Ready")
    assert cluster.get("ray.io/v1/rayservices", "duo-by-hand") is not None
    assert cluster.writes("/rayservices/duo-by-hand", "PATCH", "PUT", "DELETE") == []


async def test_kuberay_removed_pool_rayservice_goes_once_the_rest_serves(cluster, operator):
    await operator()
    await cluster.create_model("duo", TWO_POOLS)
    await eventually(lambda: cluster.rayservice("duo", "mac"), what="the mac pool's RayService")
    mac = cluster.rs_name("duo", "mac")
    await cluster.patch_model(
        "duo", {"metadata": {"generation": 2}, "spec": {"pools": TWO_POOLS["pools"][:1]}}
    )
    await cluster.reconciled("duo")
    assert cluster.get("ray.io/v1/rayservices", mac) is not None, "deleted before cpu serves"
    await cluster.kuberay_serves("duo", cluster="c-cpu", pools={"cpu": 1}, apps=("cpu",))
    await eventually(lambda: cluster.get("ray.io/v1/rayservices", mac) is None, what="mac gone")
    await eventually(lambda: cluster.phase("duo") == "Ready", what="phase Ready")
    assert [p["name"] for p in cluster.model("duo")["status"]["pools"]] == ["cpu"]
