"""Races the emulator can still show: updates mid-reconcile, kills mid-reconcile, steady state.

A gated API client pauses the operator at a chosen call so a test can change the world (or kill
the operator) at exactly that point; everything else is the real kopf operator on kmock.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from emulated_cluster import NAMESPACE
from modelgrid_operator.k8s import Client
from polling import eventually

pytestmark = pytest.mark.integration

SPEC = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [{"name": "cpu", "accelerator": "cpu"}],
    "serving": {"maxConcurrentRequests": 8},
}


@dataclass
class GatedClient(Client):
    """A real client that stops before one kind of call until the gate opens.

    Thread events, because the operator runs in a loop of its own.
    """

    pause_before: str = "create_rayservice"
    reached: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    async def _maybe_pause(self, call: str) -> None:
        if call == self.pause_before:
            self.reached.set()
            while not self.gate.is_set():
                await asyncio.sleep(0.01)

    async def create_rayservice(self, body: dict[str, Any]) -> dict[str, Any]:
        await self._maybe_pause("create_rayservice")
        return await super().create_rayservice(body)

    async def patch_model_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        await self._maybe_pause("patch_model_status")
        return await super().patch_model_status(namespace, name, status)


def _rayservices(cluster) -> list[str]:
    return [
        name
        for (resource, _, name), obj in cluster.kmock.objects.items()
        if resource.plural == "rayservices" and not obj.deleted
    ]


def _reads(cluster) -> int:
    """GETs and LISTs sent to the emulator (watches left out)."""
    return sum("watch=" not in str(r.url) for r in cluster.writes("/", "GET"))


def _concurrency(cluster) -> int:
    args = yaml.safe_load(cluster.rayservice("demo")["spec"]["serveConfigV2"])["applications"][0][
        "args"
    ]
    return args["max_ongoing_requests"]


async def test_race_update_during_reconcile_ends_with_latest_spec(cluster, operator):
    gated = GatedClient(cluster.api)
    await operator(refresh=60, client=gated)
    await cluster.create_model("demo", SPEC)
    assert await asyncio.to_thread(gated.reached.wait, 10)
    await cluster.patch_model(
        "demo", {"metadata": {"generation": 2}, "spec": {"serving": {"maxConcurrentRequests": 16}}}
    )
    gated.gate.set()
    await eventually(
        lambda: cluster.rayservice("demo") and _concurrency(cluster) == 16,
        what="RayService with the updated spec",
    )
    assert _rayservices(cluster) == [cluster.rs_name("demo")]


@pytest.mark.parametrize("killed_before", ["create_rayservice", "patch_model_status"])
async def test_race_operator_killed_mid_reconcile_restarts_without_duplicate_or_orphan(
    cluster, operator, killed_before
):
    gated = GatedClient(cluster.api, pause_before=killed_before)
    first = await operator(refresh=60, client=gated)
    await cluster.create_model("demo", SPEC)
    assert await asyncio.to_thread(gated.reached.wait, 10)
    await first.stop()
    posts = len(cluster.writes("/rayservices", "POST"))

    await operator(refresh=60)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="status after restart")
    assert _rayservices(cluster) == [cluster.rs_name("demo")]
    created_after_restart = len(cluster.writes("/rayservices", "POST")) - posts
    assert created_after_restart == (1 if killed_before == "create_rayservice" else 0)


async def test_race_steady_state_writes_nothing(cluster, operator):
    await operator(refresh=0.1)
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    await cluster.kuberay_serves("demo", cluster="demo-x1", pools={"cpu": 1})
    await eventually(lambda: cluster.phase("demo") == "Ready", what="phase Ready")
    await eventually(
        lambda: len(cluster.writes("/inferencemodels/demo/status", "PATCH")) >= 1, what="status"
    )
    status_writes = len(cluster.writes("/inferencemodels/demo/status", "PATCH"))
    child_writes = len(cluster.writes("/rayservices", "POST", "PATCH", "PUT", "DELETE"))
    reads = _reads(cluster)
    await cluster.reconciled("demo", 5)
    assert len(cluster.writes("/inferencemodels/demo/status", "PATCH")) == status_writes
    assert len(cluster.writes("/rayservices", "POST", "PATCH", "PUT", "DELETE")) == child_writes
    assert _reads(cluster) == reads  # refreshed from memory: nothing read


async def test_race_stale_pods_of_an_old_cluster_do_not_make_the_model_ready(cluster, operator):
    await operator(refresh=0.1)
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    await cluster.kuberay_serves("demo", cluster="old", pools={"cpu": 1}, app_status="DEPLOYING")
    await cluster.patch_rayservice(
        cluster.rs_name("demo"),
        {
            "status": {
                "activeServiceStatus": {
                    "rayClusterName": "new",
                    "applicationStatuses": {"demo-cpu": {"status": "RUNNING"}},
                }
            }
        },
    )
    await cluster.reconciled("demo", 3)
    assert cluster.phase("demo") == "Scheduling"
    assert cluster.model("demo")["status"]["replicas"] == "0/1"
    assert NAMESPACE == cluster.rayservice("demo")["metadata"]["namespace"]
    assert cluster.rayservice("demo") is not None


async def test_race_stale_watch_event_never_moves_status_backwards(cluster, operator):
    import kmock

    await operator(refresh=0.1)
    await cluster.create_model("demo", SPEC)
    await eventually(lambda: cluster.phase("demo") == "Scheduling", what="phase Scheduling")
    stale = cluster.model("demo")
    await cluster.kuberay_serves("demo", cluster="demo-x1", pools={"cpu": 1})
    await eventually(lambda: cluster.phase("demo") == "Ready", what="phase Ready")
    ready = cluster.model("demo")["status"]

    # Replay the old version on the watch stream, as a reconnecting watch may.
    bus = cluster.kmock._buses[kmock.resource("modelgrid.io", "v1alpha1", "inferencemodels")]
    await bus.put({"type": "MODIFIED", "object": stale})
    await cluster.reconciled("demo", 5)
    assert cluster.model("demo")["status"] == ready
