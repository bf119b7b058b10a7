"""The operator follows watch events, not a timer: a child's change moves the model's status at
once, and the slow resync from the API server puts right what a lost event left wrong (issue 21).

Every operator here runs with an hour-long refresh from memory; the resync is an hour too unless
a test is about it. A lost event is played by changing kmock's storage directly, which sends
nothing on its watch streams.
"""

from __future__ import annotations

import time

import pytest
from emulated_cluster import NAMESPACE, RS
from polling import eventually

pytestmark = pytest.mark.integration

SPEC = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [{"name": "cpu", "accelerator": "cpu"}],
    "serving": {"maxConcurrentRequests": 8},
}
HOUR = 3600.0


def _reads(cluster) -> int:
    """GETs and LISTs sent to the emulator (watches left out)."""
    return sum("watch=" not in str(r.url) for r in cluster.writes("/", "GET"))


async def test_watches_a_pod_turning_ready_moves_the_status_without_a_timer(cluster, operator):
    await operator(refresh=HOUR)
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    await cluster.kuberay_serves("demo", cluster="demo-x1", pools={"cpu": 0})
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="still no worker")
    reads = _reads(cluster)
    await cluster.create_pods("demo", cluster="demo-x1", pools={"cpu": 1})
    created = time.monotonic()
    await eventually(lambda: cluster.phase("demo") == "Ready", what="phase Ready")
    assert time.monotonic() - created < 2.0
    assert cluster.model("demo")["status"]["replicas"] == "1/1"
    assert _reads(cluster) == reads  # the status came from the watch's memory: nothing read

    # The pod stops being ready: the status follows that event too.
    await cluster.kubelet_says(
        "demo-x1-cpu-0", {"conditions": [{"type": "Ready", "status": "False"}]}
    )
    await eventually(
        lambda: cluster.model("demo")["status"]["replicas"] == "0/1", what="replicas 0/1"
    )


async def test_watches_a_rayservice_edited_by_hand_is_put_back_on_its_event(cluster, operator):
    await operator(refresh=HOUR)
    await cluster.create_model("demo", SPEC)
    rs = await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.patch_rayservice(cluster.rs_name("demo"), {"spec": {"serveConfigV2": "x"}})
    await eventually(
        lambda: cluster.rayservice("demo")["spec"]["serveConfigV2"] == rs["spec"]["serveConfigV2"],
        what="RayService put back",
    )
    assert len(cluster.writes("/rayservices", "POST")) == 1


async def test_watches_lost_events_are_put_right_by_the_resync_and_stay_right(cluster, operator):
    await operator(refresh=0.1, resync=0.5)
    await cluster.create_model("demo", SPEC)
    desired = await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.kuberay_serves("demo", cluster="demo-x1", pools={"cpu": 0})

    # A ready worker appears and the RayService is edited, and the watches say nothing of either.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "demo-x1-cpu-0",
            "namespace": NAMESPACE,
            "uid": "uid-pod",
            "labels": {
                "modelgrid.io/model": "demo",
                "modelgrid.io/pool": "cpu",
                "ray.io/cluster": "demo-x1",
            },
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    cluster.kmock.objects["v1/pods", NAMESPACE, "demo-x1-cpu-0"] = pod
    edited = cluster.rayservice("demo")
    edited["spec"] = {**edited["spec"], "serveConfigV2": "edited"}
    cluster.kmock.objects[RS, NAMESPACE, cluster.rs_name("demo")] = edited

    await eventually(lambda: cluster.phase("demo") == "Ready", what="Ready after a resync")
    await eventually(
        lambda: (
            cluster.rayservice("demo")["spec"]["serveConfigV2"] == desired["spec"]["serveConfigV2"]
        ),
        what="RayService put back by a resync",
    )
    # The refreshes from memory that follow keep what the resync read (no event came since).
    await cluster.reconciled("demo", 5)
    assert cluster.phase("demo") == "Ready"
    assert cluster.model("demo")["status"]["replicas"] == "1/1"
