"""Memory admission on an emulated API: a pool too big for every selected node is refused with
a condition that says the numbers, and no RayService (no pods) is created; when a node that
fits joins, the next refresh rolls the model out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from factories import LLAMA_8B_CONFIG
from modelgrid_operator.settings import RenderSettings
from polling import eventually

pytestmark = pytest.mark.integration

APPLE = {"kubernetes.io/arch": "arm64", "modelgrid.io/accelerator": "apple"}


def _node(name: str, memory: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": APPLE},
        "status": {"allocatable": {"memory": memory, "cpu": "10"}},
    }


async def test_operator_refuses_pool_that_fits_no_node_then_admits_when_one_joins(
    cluster, operator, tmp_path: Path
):
    model_dir = tmp_path / "llama-8b"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(LLAMA_8B_CONFIG))
    await asyncio.to_thread(cluster.core.create_node, _node("mac-mini", "16Gi"))
    # A model directory the operator reads: a path on the node, which its settings must allow.
    await operator(render=RenderSettings(allowed_host_paths=(str(tmp_path),)))
    spec = {
        "model": {"uri": str(model_dir)},
        "engine": "mlx",
        "engineArgs": {"maxModelLen": 16384},
        "pools": [{"name": "mac", "accelerator": "apple"}],
    }
    await cluster.create_model("llama", spec)
    await eventually(lambda: cluster.phase("llama") == "Failed", what="phase Failed")
    ready = cluster.condition("llama", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InsufficientMemory")
    assert ready["message"].startswith(
        "pool mac: needs 17.0 GiB = weights 15.0 GiB (8,030,261,248 parameters from config.json"
    )
    assert "KV cache 2.0 GiB (16384 tokens x 1 sequence)" in ready["message"]
    assert "largest node mac-mini has 16.0 GiB (allocatable memory)" in ready["message"]
    assert cluster.condition("llama", "MemoryAdmitted")["status"] == "False"
    # Two more refreshes (each admits the model again): still nothing is created.
    await cluster.reconciled("llama")
    assert cluster.rayservice("llama") is None
    assert cluster.writes("/rayservices", "POST") == []

    await asyncio.to_thread(cluster.core.create_node, _node("mac-studio", "64Gi"))
    rs = await eventually(lambda: cluster.rayservice("llama"), what="RayService once a node fits")
    assert [g["groupName"] for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]] == ["mac"]
    admitted = await cluster.condition_reaches("llama", "MemoryAdmitted", "Fits")
    assert "largest node mac-studio 64.0 GiB" in admitted["message"]


async def test_operator_without_any_estimate_admits_and_says_so(cluster, operator):
    await operator()
    spec = {"model": {"uri": "hf://org/unknown"}, "pools": [{"name": "cpu", "accelerator": "cpu"}]}
    await cluster.create_model("plain", spec)
    await eventually(lambda: cluster.rayservice("plain"), what="RayService created")
    memory = await eventually(
        lambda: cluster.condition("plain", "MemoryAdmitted") or None, what="MemoryAdmitted"
    )
    assert (memory["status"], memory["reason"]) == ("True", "NoEstimate")
    assert "no memory estimate" in memory["message"]


async def test_operator_two_pools_are_two_rayservices_with_pool_endpoints(cluster, operator):
    await operator()
    spec = {
        "model": {"uri": "hf://org/demo-1b"},
        "pools": [{"name": "cpu", "accelerator": "cpu"}, {"name": "mac", "accelerator": "apple"}],
    }
    await cluster.create_model("duo", spec)
    await eventually(
        lambda: cluster.rayservice("duo", "cpu") and cluster.rayservice("duo", "mac"),
        what="a RayService per pool",
    )
    # Play KubeRay: worker pods of both pools, then each pool's application on its own.
    await cluster.kuberay_serves("duo", cluster="duo-1", pools={"cpu": 1, "mac": 1}, app_status="")
    await cluster.kuberay_serves("duo", cluster="duo-1", pools={}, apps=("cpu", "mac"))
    await eventually(lambda: cluster.phase("duo") == "Ready", what="phase Ready")
    status = cluster.model("duo")["status"]
    services = {p: cluster.rs_name("duo", p) for p in ("cpu", "mac")}
    assert [(p["name"], p["endpoint"], p["rayService"]) for p in status["pools"]] == [
        (p, f"http://{services[p]}-serve-svc.default.svc:8000", services[p]) for p in services
    ]
    assert status["endpoint"] == f"http://{services['cpu']}-serve-svc.default.svc:8000/v1"
