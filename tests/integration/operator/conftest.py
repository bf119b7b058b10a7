"""Run the real kopf operator in-process against kmock, kopf's Kubernetes API emulator.

kmock validates nothing and runs no controllers: tests play KubeRay's part by writing the
RayService's status and the worker pods themselves. Schema and CEL fidelity live elsewhere.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from emulated_cluster import (
    IM,
    NAMESPACE,
    RC,
    RS,
    OperatorThread,
    operator_settings,
    point_client_at,
)
from modelgrid_operator import api
from modelgrid_operator.handlers import OperatorConfig
from modelgrid_operator.k8s import Client
from modelgrid_operator.render import rayservice_name
from modelgrid_operator.settings import RenderSettings


class Cluster:
    """Test-side access to the emulated cluster: create objects over HTTP, read them back.

    A model's RayServices are one per pool; where a test names only the model, it means the
    model's only pool (or its first).
    """

    def __init__(self, kmock: Any) -> None:
        self.kmock = kmock
        self.api = kubernetes.client.ApiClient()
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.pools: dict[str, list[str]] = {}

    def rs_name(self, model: str, pool: str | None = None) -> str:
        """The RayService name of ``model``'s pool (default: its first pool)."""
        return rayservice_name(model, pool or self.pools[model][0])

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self.kmock.objects[resource, NAMESPACE, name]
        except KeyError:
            return None
        return None if obj.deleted else dict(obj.raw)

    def model(self, name: str) -> dict[str, Any] | None:
        return self.get(IM, name)

    def rayservice(self, model: str, pool: str | None = None) -> dict[str, Any] | None:
        """The RayService of ``model``'s pool (default: its first pool)."""
        return self.get(RS, self.rs_name(model, pool))

    def raycluster(self, name: str) -> dict[str, Any] | None:
        return self.get(RC, name)

    def phase(self, name: str) -> str | None:
        return ((self.model(name) or {}).get("status") or {}).get("phase")

    async def create_model(self, name: str, spec: dict[str, Any], uid: str | None = None) -> None:
        self.pools[name] = [p["name"] for p in spec.get("pools") or []]
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": uid or f"uid-{name}",
                "resourceVersion": "1",
                "generation": 1,
            },
            "spec": spec,
        }
        await asyncio.to_thread(
            self.custom.create_namespaced_custom_object,
            api.GROUP,
            api.VERSION,
            NAMESPACE,
            api.PLURAL,
            body,
        )

    async def patch_model(self, name: str, patch: dict[str, Any]) -> None:
        if "pools" in patch.get("spec", {}):
            self.pools[name] = [p["name"] for p in patch["spec"]["pools"]]
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            api.GROUP,
            api.VERSION,
            NAMESPACE,
            api.PLURAL,
            name,
            patch,
        )

    async def delete_model(self, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_namespaced_custom_object,
            api.GROUP,
            api.VERSION,
            NAMESPACE,
            api.PLURAL,
            name,
        )

    async def patch_rayservice(self, name: str, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            "ray.io",
            "v1",
            NAMESPACE,
            "rayservices",
            name,
            patch,
        )

    async def delete_rayservice(self, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_namespaced_custom_object,
            "ray.io",
            "v1",
            NAMESPACE,
            "rayservices",
            name,
        )

    async def kuberay_serves(
        self,
        model: str,
        *,
        cluster: str,
        pools: dict[str, int],
        app_status: str = "RUNNING",
        apps: tuple[str, ...] | None = None,
    ) -> None:
        """Play KubeRay: report the application status of each pool in ``apps`` (default:
        every pool of the model) on its RayService's active cluster ``cluster``, and create
        ready worker pods (``pools``: how many per pool)."""
        for pool in self.pools[model] if apps is None else apps:
            await self.patch_rayservice(
                self.rs_name(model, pool),
                {
                    "status": {
                        "activeServiceStatus": {
                            "rayClusterName": cluster,
                            "applicationStatuses": {f"{model}-{pool}": {"status": app_status}},
                        }
                    }
                },
            )
        await self.create_pods(model, cluster=cluster, pools=pools)

    async def create_pods(self, model: str, *, cluster: str, pools: dict[str, int]) -> None:
        """Ready worker pods of ``cluster``, ``pools[p]`` for each pool ``p``."""
        for pool, count in pools.items():
            for index in range(count):
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{cluster}-{pool}-{index}",
                        "namespace": NAMESPACE,
                        "labels": {
                            "modelgrid.io/model": model,
                            "modelgrid.io/pool": pool,
                            "ray.io/cluster": cluster,
                        },
                    },
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                }
                await asyncio.to_thread(self.core.create_namespaced_pod, NAMESPACE, pod)

    async def kuberay_builds_cluster(
        self,
        model: str,
        pool: str,
        name: str,
        *,
        role: str = "active",
        created: str = "2026-01-01T00:00:00Z",
    ) -> dict[str, Any]:
        """Play KubeRay's ``constructRayClusterForRayService``: a RayCluster controlled by the
        pool's RayService, its spec copied from ``rayClusterConfig`` as it is now, named in the
        RayService's ``activeServiceStatus`` or ``pendingServiceStatus`` (``role``). kmock
        assigns no uid, so the RayService gets one here, as an API server would have given."""
        rs_name = self.rs_name(model, pool)
        rs = self.rayservice(model, pool)
        assert rs is not None, f"no RayService {rs_name}"
        uid = rs["metadata"].get("uid") or f"uid-{rs_name}"
        await self.patch_rayservice(rs_name, {"metadata": {"uid": uid}})
        body = {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "creationTimestamp": created,
                "labels": {"ray.io/originated-from-cr-name": rs_name},
                "ownerReferences": [
                    {
                        "apiVersion": "ray.io/v1",
                        "kind": "RayService",
                        "name": rs_name,
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(rs["spec"]["rayClusterConfig"]),
        }
        await asyncio.to_thread(
            self.custom.create_namespaced_custom_object,
            "ray.io",
            "v1",
            NAMESPACE,
            "rayclusters",
            body,
        )
        status = "activeServiceStatus" if role == "active" else "pendingServiceStatus"
        await self.patch_rayservice(rs_name, {"status": {status: {"rayClusterName": name}}})
        return body

    async def patch_raycluster(self, name: str, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            "ray.io",
            "v1",
            NAMESPACE,
            "rayclusters",
            name,
            patch,
        )

    def writes(self, resource_path: str, *methods: str) -> list[Any]:
        """Requests to a resource's URL path with one of the given HTTP methods."""
        wanted = {m.upper() for m in methods}
        return [
            r
            for r in list(self.kmock)
            if str(r.method).upper().rsplit(".", 1)[-1] in wanted and resource_path in str(r.url)
        ]


@pytest.fixture()
def cluster(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """kmock with our resources declared and a kubeconfig pointing at it."""
    point_client_at(kmock, tmp_path / "kubeconfig", monkeypatch)
    return Cluster(kmock)


@pytest.fixture()
async def operator(cluster: Cluster) -> AsyncIterator[Callable[..., Awaitable[OperatorThread]]]:
    """Start (and restart) the real operator; every one still running is stopped at teardown."""
    running: list[OperatorThread] = []

    async def start(
        refresh: float = 0.2,
        *,
        events: bool = False,
        client: Client | None = None,
        render: RenderSettings | None = None,
        namespaces: tuple[str, ...] = (NAMESPACE,),
    ) -> OperatorThread:
        settings = operator_settings(events=events)
        config = OperatorConfig(
            render=render or RenderSettings(),
            refresh_interval=refresh,
            client_factory=lambda: client or Client(cluster.api),
        )
        handle = OperatorThread(config, settings, namespaces).start()
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.stop()
