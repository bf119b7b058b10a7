"""The operator's lifecycle on an emulated API: create, follow KubeRay, update, delete, restart."""

from __future__ import annotations

import pytest
import yaml
from emulated_cluster import RC, RS, Cluster
from polling import eventually

pytestmark = pytest.mark.integration

SPEC = {
    "model": {"uri": "hf://org/demo-1b"},
    "aliases": ["gpt-4o-mini"],
    "pools": [{"name": "cpu", "accelerator": "cpu", "minReplicas": 1, "maxReplicas": 2}],
    "serving": {"maxConcurrentRequests": 8},
}


def _serve_args(rs: dict) -> dict:
    return yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"][0]["args"]


async def test_operator_create_renders_owned_rayservice_and_schedules(cluster, operator):
    await operator()
    await cluster.create_model("demo", SPEC, uid="uid-1")
    rs = await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert rs["metadata"]["ownerReferences"][0]["controller"] is True
    assert [g["groupName"] for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]] == ["cpu"]
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    status = cluster.model("demo")["status"]
    assert status["servedModelNames"] == ["demo", "gpt-4o-mini"]
    assert status["replicas"] == "0/1"
    # The reconcile that created the child already reports on it (no detour through Pending).
    first = cluster.writes("/inferencemodels/demo/status", "PATCH")[0].data["status"]
    assert first["phase"] == "Scheduling"


async def test_operator_child_ready_makes_model_ready_with_endpoint_and_time_to_ready(
    cluster, operator
):
    await operator()
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    await cluster.kuberay_serves("demo", cluster="demo-x1", pools={}, app_status="DEPLOYING")
    await cluster.kuberay_serves(
        "demo", cluster="demo-x1", pools={"cpu": 1}, app_status="DEPLOYING"
    )
    await eventually(lambda: cluster.phase("demo") == "Loading", what="phase Loading")
    await cluster.kuberay_serves("demo", cluster="demo-x1", pools={}, app_status="RUNNING")
    await eventually(lambda: cluster.phase("demo") == "Ready", what="phase Ready")
    status = cluster.model("demo")["status"]
    service = f"http://{cluster.rs_name('demo')}-serve-svc.default.svc:8000"
    assert status["endpoint"] == f"{service}/v1"
    assert status["readyReplicas"] == 1
    assert status["pools"][0] == {
        "name": "cpu",
        "accelerator": "cpu",
        "engine": "vllm",
        "readyReplicas": 1,
        "desiredReplicas": 1,
        "endpoint": service,
        "rayService": cluster.rs_name("demo"),
    }
    times = status["timeToReady"]
    assert times["total"] is not None
    assert times["total"] == pytest.approx(
        times["pending"] + times["scheduling"] + times["loading"], abs=0.01
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Serving")


async def test_operator_update_patches_child_in_place(cluster, operator):
    await operator()
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.patch_model(
        "demo", {"metadata": {"generation": 2}, "spec": {"serving": {"maxConcurrentRequests": 16}}}
    )
    await eventually(
        lambda: _serve_args(cluster.rayservice("demo"))["max_ongoing_requests"] == 16,
        what="RayService updated",
    )
    assert len(cluster.writes("/rayservices", "POST")) == 1
    assert cluster.writes(f"/rayservices/{cluster.rs_name('demo')}", "DELETE") == []


async def test_operator_delete_removes_child_and_holds_no_finalizer(cluster, operator):
    await operator()
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    await cluster.reconciled("demo")
    assert not cluster.model("demo")["metadata"].get("finalizers")
    await cluster.delete_model("demo")
    await eventually(lambda: cluster.rayservice("demo") is None, what="RayService deleted")
    await eventually(lambda: cluster.model("demo") is None, what="model gone")


async def test_operator_restart_duplicates_and_rewrites_nothing(cluster, operator):
    first = await operator()
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    await first.stop()
    posts, patches = (
        len(cluster.writes("/rayservices", "POST")),
        len(cluster.writes(f"/rayservices/{cluster.rs_name('demo')}", "PATCH")),
    )
    await operator()
    await cluster.reconciled("demo", 3)
    assert len(cluster.writes("/rayservices", "POST")) == posts == 1
    assert len(cluster.writes(f"/rayservices/{cluster.rs_name('demo')}", "PATCH")) == patches


async def test_operator_recreates_child_deleted_behind_its_back(cluster, operator):
    await operator()
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.delete_rayservice(cluster.rs_name("demo"))
    await eventually(lambda: cluster.rayservice("demo"), what="RayService recreated")
    assert len(cluster.writes("/rayservices", "POST")) == 2


async def test_operator_corrects_hand_edited_child(cluster, operator):
    await operator()
    await cluster.create_model("demo", SPEC)
    rs = await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    original = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    edited = [{**original[0], "maxReplicas": 9}]
    await cluster.patch_rayservice(
        cluster.rs_name("demo"), {"spec": {"rayClusterConfig": {"workerGroupSpecs": edited}}}
    )
    await eventually(
        lambda: (
            cluster.rayservice("demo")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0][
                "maxReplicas"
            ]
            == 2
        ),
        what="drift corrected",
    )


async def refused_as_invalid(cluster: Cluster, name: str, message: str) -> None:
    """Model ``name`` fails with SpecValid False (InvalidSpec) naming ``message``, and no
    RayService is written."""
    await eventually(lambda: cluster.phase(name) == "Failed", what="phase Failed")
    valid = cluster.condition(name, "SpecValid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    assert message in valid["message"]
    assert cluster.rayservice(name) is None
    assert cluster.writes("/rayservices", "POST", "PATCH", "PUT", "DELETE") == []


async def test_operator_invalid_spec_fails_with_condition_and_touches_nothing(cluster, operator):
    await operator()
    bad = {
        **SPEC,
        "pools": [{"name": "cpu", "accelerator": "cpu", "minReplicas": 3, "maxReplicas": 2}],
    }
    await cluster.create_model("bad", bad)
    await refused_as_invalid(
        cluster, "bad", "spec.pools[0].minReplicas: minReplicas must not exceed maxReplicas"
    )


async def test_operator_name_kuberay_would_refuse_fails_with_condition_and_writes_nothing(
    cluster, operator
):
    """KubeRay's ``ValidateRayServiceMetadata`` (utils/validation.go, v1.6/v1.7) refuses a
    RayService named ``8b-chat`` (not a DNS-1035 label) and stops reconciling it, silently to
    the model's owner. The operator refuses the model instead, naming the field, and writes no
    RayService KubeRay would sit on. (A real API server refuses it earlier, by the CRD's CEL.)"""
    await operator()
    await cluster.create_model("8b-chat", SPEC)
    await refused_as_invalid(cluster, "8b-chat", "metadata.name must be a DNS-1035 label")


async def test_operator_without_kuberay_reports_condition_and_keeps_running(cluster, operator):
    # No KubeRay: discovery has no ray.io (so nothing of it is watched), its URLs answer 404.
    for resource in (RS, RC):
        del cluster.kmock.resources[resource]
    (
        cluster.kmock[cluster.kmock.resource("ray.io", "v1", "rayservices")]
        << 404
        << b"404 page not found"
    )
    await operator()
    await cluster.create_model("demo", SPEC)

    def applied_condition():
        status = (cluster.model("demo") or {}).get("status") or {}
        return next(
            (c for c in status.get("conditions", []) if c["type"] == "RayServiceApplied"), None
        )

    condition = await eventually(applied_condition, what="RayServiceApplied condition")
    assert (condition["status"], condition["reason"]) == ("False", "KubeRayMissing")
    assert "install KubeRay" in condition["message"]
    assert cluster.phase("demo") == "Pending"


async def test_operator_two_models_at_once_each_get_one_child(cluster, operator):
    await operator()
    await cluster.create_model("one", SPEC)
    await cluster.create_model("two", {**SPEC, "aliases": []})
    await eventually(
        lambda: cluster.rayservice("one") and cluster.rayservice("two"), what="two RayServices"
    )
    assert len(cluster.writes("/rayservices", "POST")) == 2
    assert cluster.rayservice("one")["metadata"]["labels"]["modelgrid.io/model"] == "one"


async def test_operator_posts_events_on_phase_transitions(cluster, operator):
    await operator(events=True)
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    await cluster.kuberay_serves("demo", cluster="demo-x1", pools={"cpu": 1})
    await eventually(lambda: cluster.phase("demo") == "Ready", what="phase Ready")

    def reasons():
        return [
            r.data.get("reason")
            for r in cluster.writes("/events", "POST")
            if isinstance(r.data, dict)
        ]

    await eventually(
        lambda: {"RayServiceCreated", "Scheduling", "Ready"} <= set(reasons()),
        what="events for creation and each phase",
    )
    assert reasons().count("Ready") == 1
