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
from emulated_cluster import NAMESPACE, Cluster
from modelgrid_operator import api
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


def _earlier_operators_rayservice(model: str, uid: str) -> dict:
    """The one RayService for all pools that operators before one per pool made: named after
    the model, labelled with it, controlled by it."""
    owner = {"apiVersion": "modelgrid.io/v1alpha1", "kind": "InferenceModel", "name": model}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": model,
            "namespace": NAMESPACE,
            "uid": f"uid-rayservice-{model}",  # kmock assigns none; the operator's watch needs one
            "labels": {"modelgrid.io/model": model},
            "ownerReferences": [{**owner, "uid": uid, "controller": True}],
        },
        "spec": {"serveConfigV2": "applications: []", "rayClusterConfig": {}},
    }


async def _as_earlier_operators_left_it(cluster: Cluster, model: str) -> None:
    """The status an operator before one RayService per pool wrote: its RayService's name."""
    earlier = {"status": {"phase": "Ready", "rayService": model}}
    await cluster.custom_objects("patch", api.PLURAL, model, earlier, status=True)


async def _create_rayservice(cluster: Cluster, body: dict) -> None:
    await cluster.custom_objects("create", "rayservices", body)


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
    legacy = _earlier_operators_rayservice("duo", "uid-duo")
    stranger = copy.deepcopy(legacy)
    stranger["metadata"].update(name="duo-by-hand", uid="uid-by-hand", ownerReferences=[])
    for body in (legacy, stranger):
        await _create_rayservice(cluster, body)
    await _as_earlier_operators_left_it(cluster, "duo")
    await operator()
    await eventually(
        lambda: cluster.rayservice("duo", "cpu") and cluster.rayservice("duo", "mac"),
        what="a RayService per pool",
    )
    await cluster.kuberay_serves("duo", cluster="c-cpu", pools={"cpu": 1}, apps=("cpu",))
    await cluster.reconciled("duo")
    assert cluster.get("ray.io/v1/rayservices", "duo") is not None, "deleted before all serve"
    assert cluster.model("duo")["status"]["retiringRayServices"] == ["duo"]
    await cluster.kuberay_serves("duo", cluster="c-mac", pools={"mac": 1}, apps=("mac",))
    await eventually(
        lambda: cluster.get("ray.io/v1/rayservices", "duo") is None, what="legacy RayService gone"
    )
    await eventually(lambda: cluster.phase("duo") == "Ready", what="phase Ready")
    assert cluster.get("ray.io/v1/rayservices", "duo-by-hand") is not None
    assert cluster.writes("/rayservices/duo-by-hand", "PATCH", "PUT", "DELETE") == []


async def test_kuberay_moving_to_a_rayservice_per_pool_routes_to_the_old_one_until_each_serves(
    cluster, operator
):
    """The gateway routes by ``status.pools[]``: while a pool's own RayService does not serve
    (its serve Service exists only once its application runs, ``getAndCheckServeStatus``), the
    pool's endpoint, RayService and replicas are those of the earlier operator's RayService that
    still serves it, and the model stays Ready; each pool moves over when its own serves."""
    await cluster.create_model("duo", TWO_POOLS, uid="uid-duo")
    await _create_rayservice(cluster, _earlier_operators_rayservice("duo", "uid-duo"))
    await _as_earlier_operators_left_it(cluster, "duo")
    running = {"duo-cpu": {"status": "RUNNING"}, "duo-mac": {"status": "RUNNING"}}
    old = {"activeServiceStatus": {"rayClusterName": "c-old", "applicationStatuses": running}}
    await cluster.patch_rayservice("duo", {"status": old})
    await cluster.create_pods("duo", cluster="c-old", pools={"cpu": 1, "mac": 1})
    await operator()
    await eventually(
        lambda: cluster.rayservice("duo", "cpu") and cluster.rayservice("duo", "mac"),
        what="a RayService per pool",
    )

    def routes() -> dict[str, tuple]:
        return {
            name: (p.get("rayService"), p.get("endpoint"), p.get("readyReplicas"))
            for name, p in _pools(cluster, "duo").items()
        }

    legacy = "http://duo-serve-svc.default.svc:8000/pools"
    await eventually(
        lambda: (
            routes() == {"cpu": ("duo", f"{legacy}/cpu", 1), "mac": ("duo", f"{legacy}/mac", 1)}
        ),
        what="both pools routed to the earlier operator's RayService",
    )
    assert cluster.phase("duo") == "Ready"

    await cluster.kuberay_serves("duo", cluster="c-cpu", pools={"cpu": 1}, apps=("cpu",))
    cpu = cluster.rs_name("duo", "cpu")
    await eventually(
        lambda: routes()["cpu"] == (cpu, f"http://{cpu}-serve-svc.default.svc:8000", 1),
        what="the cpu pool routed to its own RayService",
    )
    assert routes()["mac"] == ("duo", f"{legacy}/mac", 1)
    assert cluster.phase("duo") == "Ready"

    await cluster.kuberay_serves("duo", cluster="c-mac", pools={"mac": 1}, apps=("mac",))
    await eventually(
        lambda: cluster.get("ray.io/v1/rayservices", "duo") is None, what="legacy RayService gone"
    )
    mac = cluster.rs_name("duo", "mac")
    await eventually(lambda: routes()["mac"][0] == mac, what="the mac pool on its own")
    assert cluster.model("duo")["status"]["retiringRayServices"] == []


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
    assert cluster.model("duo")["status"]["retiringRayServices"] == []


CPU = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [{"name": "cpu", "accelerator": "cpu", "minReplicas": 1, "maxReplicas": 2}],
}
WIDE_GPU = {
    "model": {"uri": "hf://org/demo-70b"},
    "engineArgs": {"tensorParallelSize": 8},
    "pools": [{"name": "gpu", "accelerator": "nvidia", "minReplicas": 1}],
}
TOLERATION = {"key": "modelgrid.io/reserved", "operator": "Exists", "effect": "NoSchedule"}


def _group(obj: dict | None) -> dict:
    spec = (obj or {}).get("spec") or {}
    (group,) = (spec.get("rayClusterConfig") or spec)["workerGroupSpecs"]
    return group


async def test_kuberay_bound_and_toleration_edits_reach_the_running_cluster(cluster, operator):
    """``GenerateHashWithoutReplicasAndWorkersToDelete`` leaves replicas, bounds and
    tolerations out of the hash KubeRay compares, so KubeRay never changes a running cluster
    for them: the operator patches the RayCluster's group, keeping the autoscaler's count."""
    await operator()
    await cluster.create_model("demo", CPU)
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.kuberay_builds_cluster("demo", "cpu", "demo-cpu-c1")
    # The autoscaler grew the group to its maximum.
    await cluster.patch_raycluster(
        "demo-cpu-c1",
        {
            "spec": {
                "workerGroupSpecs": [{**_group(cluster.raycluster("demo-cpu-c1")), "replicas": 2}]
            }
        },
    )
    await asyncio.sleep(0.4)
    assert cluster.writes("/rayclusters/demo-cpu-c1", "PATCH")[1:] == [], "nothing to patch yet"

    edited = {**CPU["pools"][0], "maxReplicas": 4, "tolerations": [TOLERATION]}
    await cluster.patch_model("demo", {"metadata": {"generation": 2}, "spec": {"pools": [edited]}})

    def patched() -> bool:
        group = _group(cluster.raycluster("demo-cpu-c1"))
        return group["maxReplicas"] == 4 and TOLERATION in group["template"]["spec"]["tolerations"]

    await eventually(patched, what="bounds and tolerations in the RayCluster")
    group = _group(cluster.raycluster("demo-cpu-c1"))
    assert (group["minReplicas"], group["replicas"]) == (1, 2)  # the autoscaler's 2 is kept
    assert _group(cluster.rayservice("demo"))["maxReplicas"] == 4
    operator_patches = cluster.writes("/rayclusters/demo-cpu-c1", "PATCH")[1:]
    assert len(operator_patches) == 1 and isinstance(operator_patches[0].data, list)  # JSON patch
    assert cluster.writes("/rayclusters", "DELETE") == []  # no new cluster for a bound


async def test_kuberay_a_cluster_change_of_a_wide_pool_replaces_it_instead_of_doubling_it(
    cluster, operator
):
    """With eight GPUs a pool is over the surge limit: its RayService says ``upgradeStrategy:
    None``, under which ``shouldPrepareNewCluster`` prepares nothing, so the operator deletes the
    outdated cluster and KubeRay builds the new one alone (never 16 GPUs at once)."""
    await operator()
    await cluster.create_model("wide", WIDE_GPU)
    rs = await eventually(lambda: cluster.rayservice("wide"), what="RayService created")
    assert rs["spec"]["upgradeStrategy"] == {"type": "None"}
    await cluster.kuberay_builds_cluster("wide", "gpu", "wide-gpu-c1")
    await asyncio.sleep(0.4)
    assert cluster.writes("/rayclusters", "DELETE") == [], "replaced while current"

    selector = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    pools = [{**WIDE_GPU["pools"][0], "nodeSelector": selector}]
    await cluster.patch_model("wide", {"metadata": {"generation": 2}, "spec": {"pools": pools}})
    await eventually(lambda: cluster.raycluster("wide-gpu-c1") is None, what="old cluster deleted")
    assert len(cluster.writes("/rayclusters/wide-gpu-c1", "DELETE")) == 1
    template = _group(cluster.rayservice("wide"))["template"]["spec"]
    assert template["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"


async def test_kuberay_a_cluster_change_of_a_small_pool_is_left_to_kuberays_new_cluster(
    cluster, operator
):
    """Within the surge limit, ``NewCluster``: KubeRay starts the new cluster beside the one
    that serves; the operator deletes nothing."""
    await operator()
    await cluster.create_model("demo", CPU)
    rs = await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    assert rs["spec"]["upgradeStrategy"] == {"type": "NewCluster"}
    await cluster.kuberay_builds_cluster("demo", "cpu", "demo-cpu-c1")
    await cluster.patch_model(
        "demo", {"metadata": {"generation": 2}, "spec": {"model": {"uri": "hf://org/demo-2b"}}}
    )
    await eventually(
        lambda: "demo-2b" in cluster.rayservice("demo")["spec"]["serveConfigV2"], what="patched"
    )
    await asyncio.sleep(0.4)
    assert cluster.writes("/rayclusters", "DELETE") == []


async def test_kuberay_a_late_new_cluster_is_reported_while_the_old_one_serves(cluster, operator):
    """KubeRay keeps a pending cluster until every application on it runs, with no deadline,
    and the active one serves meanwhile: past ``upgradeDeadlineSeconds`` the model says
    ``Progressing=False, ProgressDeadlineExceeded`` and what is missing, and stays Ready."""
    await operator()
    await cluster.create_model("demo", CPU)
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.kuberay_builds_cluster("demo", "cpu", "demo-cpu-old")
    await cluster.kuberay_serves("demo", cluster="demo-cpu-old", pools={"cpu": 1})
    await eventually(lambda: cluster.phase("demo") == "Ready", what="phase Ready")
    assert cluster.condition("demo", "Progressing")["reason"] == "UpToDate"

    # A new cluster KubeRay started long ago (900 s is the default deadline).
    await cluster.kuberay_builds_cluster(
        "demo", "cpu", "demo-cpu-new", role="pending", created="2020-01-01T00:00:00Z"
    )
    await eventually(
        lambda: cluster.condition("demo", "Progressing").get("status") == "False",
        what="Progressing False",
    )
    progressing = cluster.condition("demo", "Progressing")
    assert progressing["reason"] == "ProgressDeadlineExceeded"
    assert progressing["message"] == (
        "pool cpu: Ray cluster demo-cpu-new is not serving after 900s: 0/1 workers ready, "
        "application not deployed; cluster demo-cpu-old keeps serving"
    )
    assert cluster.phase("demo") == "Ready"
    assert _pools(cluster, "demo")["cpu"]["readyReplicas"] == 1
    assert cluster.writes("/rayclusters", "DELETE") == []  # reported, not acted on


async def test_kuberay_appending_a_pool_leaves_the_running_pools_rayservice_untouched(
    cluster, operator
):
    """``shouldUpdateCluster`` sends a RayService whose groups were appended to through
    ``modifyRayCluster``, which copies the spec over the live cluster and resets autoscaled
    groups to their rendered replicas. A new pool is a new RayService instead: the running
    pool's RayService and RayCluster get no write."""
    await operator()
    await cluster.create_model("demo", CPU)
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.kuberay_builds_cluster("demo", "cpu", "demo-cpu-c1")
    await asyncio.sleep(0.3)
    cpu = cluster.rs_name("demo", "cpu")
    before = len(cluster.writes(f"/rayservices/{cpu}", "PATCH", "PUT"))
    mac = {"name": "mac", "accelerator": "apple", "minReplicas": 1}
    await cluster.patch_model(
        "demo", {"metadata": {"generation": 2}, "spec": {"pools": [CPU["pools"][0], mac]}}
    )
    await eventually(lambda: cluster.rayservice("demo", "mac"), what="the new pool's RayService")
    await asyncio.sleep(0.4)
    assert len(cluster.writes(f"/rayservices/{cpu}", "PATCH", "PUT")) == before
    assert cluster.writes("/rayclusters/demo-cpu-c1", "PATCH")[1:] == []


async def test_kuberay_wide_model_of_an_earlier_operator_is_not_held_twice(cluster, operator):
    """Over the surge limit, the move to a RayService per pool does not wait for the new
    cluster to serve beside the old one (that would hold 16 GPUs): the old RayService goes at
    once, as the cluster would under ``upgradeStrategy: None``."""
    await cluster.create_model("wide", WIDE_GPU, uid="uid-wide")
    await _create_rayservice(cluster, _earlier_operators_rayservice("wide", "uid-wide"))
    await _as_earlier_operators_left_it(cluster, "wide")
    await operator()
    await eventually(lambda: cluster.rayservice("wide"), what="the pool's RayService")
    await eventually(
        lambda: cluster.get("ray.io/v1/rayservices", "wide") is None, what="legacy deleted"
    )
