"""Ownership on an emulated API, written as a tenant would try it: an InferenceModel whose pool's
RayService name a hand-made RayService has, hand edits to the RayService's pod templates, a node that fits no more
while the model serves, and deleting models while no operator runs."""

from __future__ import annotations

import asyncio
import copy

import pytest
import yaml
from emulated_cluster import Cluster
from modelgrid_operator.render import rayservice_name
from polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.security]

SPEC = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [{"name": "cpu", "accelerator": "cpu", "minReplicas": 1}],
}

HAND_MADE = yaml.safe_load(
    f"""
apiVersion: ray.io/v1
kind: RayService
metadata:
  name: {rayservice_name("billing", "cpu")}
  namespace: default
  uid: uid-hand-made
  resourceVersion: "1"
spec:
  serveConfigV2: "applications: []"
  rayClusterConfig:
    headGroupSpec:
      rayStartParams: {{}}
      template:
        spec:
          containers: [{{name: ray-head, image: "rayproject/ray:2.60.0"}}]
"""
)


async def create_rayservice(cluster: Cluster, body: dict) -> None:
    await cluster.custom_objects("create", "rayservices", body)


async def test_ownership_model_whose_rayservice_name_is_hand_made_takes_nothing(cluster, operator):
    await create_rayservice(cluster, copy.deepcopy(HAND_MADE))
    await operator()
    await cluster.create_model("billing", SPEC)
    await eventually(lambda: cluster.phase("billing") == "Failed", what="phase Failed")
    applied = cluster.condition("billing", "RayServiceApplied")
    assert (applied["status"], applied["reason"]) == ("False", "Conflict")
    assert "no controller owner reference" in applied["message"]
    assert cluster.condition("billing", "Ready")["reason"] == "Conflict"
    await cluster.reconciled("billing")
    assert (
        cluster.writes(f"/rayservices/{cluster.rs_name('billing')}", "PATCH", "PUT", "DELETE") == []
    )
    assert cluster.rayservice("billing")["spec"] == HAND_MADE["spec"]

    await cluster.delete_model("billing")
    await eventually(lambda: cluster.model("billing") is None, what="model gone")
    await asyncio.sleep(0.3)
    assert cluster.rayservice("billing") is not None, "the hand-made RayService was deleted"
    assert cluster.writes(f"/rayservices/{cluster.rs_name('billing')}", "DELETE") == []


async def test_ownership_rayservice_of_an_older_model_of_that_name_is_not_taken(cluster, operator):
    """A RayService whose controller is another object (another uid) is not ours either."""
    other = copy.deepcopy(HAND_MADE)
    other["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "billing",
            "uid": "uid-deploy",
            "controller": True,
        }
    ]
    await create_rayservice(cluster, other)
    await operator()
    await cluster.create_model("billing", SPEC)
    applied = await cluster.condition_reaches("billing", "RayServiceApplied", "Conflict")
    assert "controlled by Deployment billing (uid uid-deploy)" in applied["message"]
    assert cluster.writes(f"/rayservices/{cluster.rs_name('billing')}", "PATCH", "DELETE") == []


async def test_ownership_hand_edits_to_pod_templates_are_removed(cluster, operator):
    await operator()
    await cluster.create_model("demo", SPEC)
    rendered = await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    cluster_spec = rendered["spec"]["rayClusterConfig"]
    # What an API server and KubeRay's schema add: not drift.
    live = copy.deepcopy(cluster_spec)
    for template in [live["headGroupSpec"]["template"]] + [
        g["template"] for g in live["workerGroupSpecs"]
    ]:
        template["spec"].update(restartPolicy="Always", dnsPolicy="ClusterFirst")
        for c in template["spec"]["containers"]:
            c.update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
            for port in c.get("ports", []):
                port["protocol"] = "TCP"
    for group in live["workerGroupSpecs"]:
        group["numOfHosts"] = 1
    await cluster.patch_rayservice(cluster.rs_name("demo"), {"spec": {"rayClusterConfig": live}})
    await cluster.reconciled("demo")
    assert cluster.writes(f"/rayservices/{cluster.rs_name('demo')}", "PATCH")[1:] == [], (
        "defaults were 'corrected'"
    )

    # What someone adds by hand: removed within a refresh.
    head = {"hostNetwork": True, "serviceAccountName": "admin"}
    worker = copy.deepcopy(live["workerGroupSpecs"])
    worker[0]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    worker[0]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    await cluster.patch_rayservice(
        cluster.rs_name("demo"),
        {
            "spec": {
                "rayClusterConfig": {
                    "headGroupSpec": {"template": {"spec": head}},
                    "workerGroupSpecs": worker,
                }
            }
        },
    )

    def restored() -> bool:
        spec = cluster.rayservice("demo")["spec"]["rayClusterConfig"]
        head_spec = spec["headGroupSpec"]["template"]["spec"]
        containers = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"]
        return (
            "hostNetwork" not in head_spec
            and "serviceAccountName" not in head_spec
            and containers == cluster_spec["workerGroupSpecs"][0]["template"]["spec"]["containers"]
        )

    await eventually(restored, what="hand edits removed")


GIB = 2**30


def node(name: str, memory: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": "amd64"}},
        "status": {"allocatable": {"memory": str(memory), "cpu": "16"}},
    }


async def test_ownership_admission_with_no_fitting_node_keeps_the_running_rayservice(
    cluster, operator
):
    spec = {**SPEC, "memory": {"weightsSize": "20Gi"}}
    await asyncio.to_thread(cluster.core.create_node, node("big", 64 * GIB))
    await asyncio.to_thread(cluster.core.create_node, node("small", 8 * GIB))
    await operator()
    await cluster.create_model("demo", spec)
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.kuberay_serves("demo", cluster="demo-raycluster-1", pools={"cpu": 1})
    await eventually(lambda: cluster.phase("demo") == "Ready", what="phase Ready")

    # The one large node is drained for an upgrade: nothing fits right now.
    await asyncio.to_thread(cluster.core.delete_node, "big")
    await eventually(
        lambda: cluster.condition("demo", "MemoryAdmitted").get("status") == "False",
        what="MemoryAdmitted False",
    )
    admitted = cluster.condition("demo", "MemoryAdmitted")
    assert admitted["reason"] == "InsufficientMemory"
    assert "the pool keeps running as deployed" in admitted["message"]
    await cluster.reconciled("demo")
    assert cluster.rayservice("demo") is not None
    assert cluster.writes(f"/rayservices/{cluster.rs_name('demo')}", "DELETE") == []
    assert cluster.phase("demo") == "Ready"

    # A spec change that cannot be placed now is not applied; the model says why.
    patches = len(cluster.writes(f"/rayservices/{cluster.rs_name('demo')}", "PATCH"))
    await cluster.patch_model("demo", {"spec": {"serving": {"maxConcurrentRequests": 3}}})
    await eventually(
        lambda: cluster.condition("demo", "RayServiceApplied").get("reason") == "KeptRunning",
        what="RayServiceApplied KeptRunning",
    )
    assert "the spec is not applied" in cluster.condition("demo", "RayServiceApplied")["message"]
    await cluster.reconciled("demo")
    assert len(cluster.writes(f"/rayservices/{cluster.rs_name('demo')}", "PATCH")) == patches
    assert cluster.phase("demo") == "Ready"


async def test_ownership_model_without_rayservice_that_fits_nowhere_creates_nothing(
    cluster, operator
):
    await asyncio.to_thread(cluster.core.create_node, node("small", 8 * GIB))
    await operator()
    await cluster.create_model("demo", {**SPEC, "memory": {"weightsSize": "20Gi"}})
    await eventually(lambda: cluster.phase("demo") == "Failed", what="phase Failed")
    await cluster.reconciled("demo")
    assert cluster.rayservice("demo") is None
    assert cluster.writes("/rayservices", "POST") == []


async def test_ownership_delete_with_no_operator_running_does_not_hang(cluster, operator):
    running = await operator()
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.reconciled("demo")
    await running.stop()
    assert not cluster.model("demo")["metadata"].get("finalizers")
    await cluster.delete_model("demo")
    await eventually(lambda: cluster.model("demo") is None, what="model deleted without operator")
    owner = cluster.rayservice("demo")["metadata"]["ownerReferences"][0]
    assert (owner["uid"], owner["controller"]) == ("uid-demo", True)  # for the GC


async def test_ownership_finalizer_of_earlier_versions_is_removed_on_resume(cluster, operator):
    await cluster.create_model("old", SPEC)
    await cluster.patch_model("old", {"metadata": {"finalizers": ["modelgrid.io/finalizer"]}})
    assert cluster.model("old")["metadata"]["finalizers"] == ["modelgrid.io/finalizer"]
    await operator()
    await eventually(
        lambda: not cluster.model("old")["metadata"].get("finalizers"),
        what="legacy finalizer removed",
    )
    await cluster.delete_model("old")
    await eventually(lambda: cluster.model("old") is None, what="model deleted")
