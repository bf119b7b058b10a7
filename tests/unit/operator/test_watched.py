"""What the operator keeps in memory and reads back: the owner of each child, and an answer of the
API server read back until the watch has caught up with it (issue 21)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from modelgrid_operator import api, turns, watched
from modelgrid_operator.config import OperatorConfig

pytestmark = pytest.mark.unit


def _obj(name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "managedFields": [{}], **meta}}


def _watched(**indexes: dict[Any, list[dict[str, Any]]]) -> watched.Watched:
    kinds = ("models", "rayservices", "rayclusters", "pods", "network_policies", "nodes")
    return watched.Watched(**{k: indexes.get(k, {}) for k in kinds})


class FakeApi:
    """The calls of the real client the tests reach, answered from a dict."""

    def __init__(self, api_client: Any = None) -> None:
        self.api_client = api_client
        self.stored: dict[str, Any] = {}
        self.calls: list[str] = []

    async def create_rayservice(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        return {**body, "status": {"created": True}}

    async def get_rayservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append("get")
        return self.stored.get(name)

    async def list_model_pods(self, namespace: str, model: str) -> list[dict[str, Any]]:
        self.calls.append("list pods")
        return self.stored.get("pods", [])

    def __getattr__(self, name: str) -> Any:
        return None


def test_indexes_drop_managed_fields_and_key_pods_by_model() -> None:
    pod = _obj("p", labels={"modelgrid.io/model": "demo"})
    assert watched.by_name(pod) == {
        ("ns", "p"): {
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "labels": {"modelgrid.io/model": "demo"},
            }
        }
    }
    assert list(watched.by_model(pod)) == [("ns", "demo")]
    assert watched.by_model(_obj("other")) == {}


def test_latest_is_the_value_indexed_last() -> None:
    older, newer = {"v": 1}, {"v": 2}
    assert watched.latest({"k": [older, newer]}, "k") is newer
    assert watched.latest({}, "k") is None


def test_model_of_each_child() -> None:
    rs = _obj("demo-cpu-1", labels={"modelgrid.io/model": "demo"})
    indexed = _watched(rayservices={("ns", "demo-cpu-1"): [rs]})
    cluster = _obj("c1", ownerReferences=[{"kind": "RayService", "name": "demo-cpu-1"}])
    policy = _obj("demo", ownerReferences=[{"kind": api.KIND, "name": "demo"}])
    assert watched.model_of("rayservices", rs, indexed) == ("ns", "demo")
    assert watched.model_of("rayclusters", cluster, indexed) == ("ns", "demo")
    assert watched.model_of("networkpolicies", policy, indexed) == ("ns", "demo")
    assert watched.model_of("pods", _obj("stray"), indexed) is None
    orphan = _obj("c2", ownerReferences=[{"kind": "RayService", "name": "gone"}])
    assert watched.model_of("rayclusters", orphan, indexed) is None


async def test_a_write_is_read_back_until_the_index_changes() -> None:
    rayservices: dict[Any, list[dict[str, Any]]] = {}
    through = FakeApi()
    client = watched.WatchedClient.over(through, _watched(rayservices=rayservices), {})  # type: ignore[arg-type]
    created = await client.create_rayservice(_obj("rs"))
    assert await client.get_rayservice("ns", "rs") == created  # not indexed yet: the answer
    rayservices[("ns", "rs")] = [{"metadata": {"name": "rs"}, "status": {"from": "watch"}}]
    assert (await client.get_rayservice("ns", "rs"))["status"] == {"from": "watch"}
    assert through.calls == ["create"]  # reads came from memory


async def test_a_resync_read_stands_until_the_watch_catches_up() -> None:
    pods: dict[Any, list[dict[str, Any]]] = {("ns", "demo"): []}
    through = FakeApi()
    through.stored["pods"] = [_obj("p")]
    watching = watched.WatchedClient.over(through, _watched(pods=pods), {})  # type: ignore[arg-type]
    resync = watched.ResyncClient.over(through, watching.watched, {}, watching.known)  # type: ignore[arg-type]
    assert await resync.list_model_pods("ns", "demo") == [_obj("p")]
    assert await watching.list_model_pods("ns", "demo") == [_obj("p")]  # the event was lost
    pods[("ns", "demo")] = [{"metadata": {"name": "p2"}}]  # the watch delivers something newer
    assert await watching.list_model_pods("ns", "demo") == [{"metadata": {"name": "p2"}}]
    assert through.calls == ["list pods"]


async def test_the_status_read_is_the_one_last_written() -> None:
    model = _obj("demo", uid="u")
    model["status"] = {"phase": "Pending"}
    client = watched.WatchedClient.over(
        FakeApi(),  # type: ignore[arg-type]
        _watched(models={("ns", "demo"): [model]}, nodes={watched.NODES: [_obj("n")]}),
        {"u": {"phase": "Ready"}},
    )
    assert (await client.get_model("ns", "demo"))["status"] == {"phase": "Ready"}
    assert await client.get_model("ns", "gone") is None
    assert await client.list_nodes() == [_obj("n")]


async def test_a_burst_of_events_coalesces_into_the_reconcile_that_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = asyncio.Event()
    ran = 0

    async def reconcile(*_: Any, **__: Any) -> Any:
        nonlocal ran
        ran += 1
        await release.wait()
        return turns.Outcome(None, api.Phase.PENDING, None, "", "")

    monkeypatch.setattr(turns, "reconcile", reconcile)
    models = turns.TakingTurns(OperatorConfig(client_factory=lambda: None), client=object())  # type: ignore[arg-type,return-value]
    body = {"metadata": {"name": "demo", "namespace": "ns", "uid": "u"}}
    running = asyncio.create_task(models.reconcile(body, coalesce=True))
    await asyncio.sleep(0)
    burst = [asyncio.create_task(models.reconcile(body, coalesce=True)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(running, *burst)
    assert ran == 2  # the one running, and one after it for the whole burst
    assert sum(r is None for r in results) == 9
