"""Run the real kopf operator in-process against kmock, kopf's Kubernetes API emulator.

kmock validates nothing and runs no controllers: tests play KubeRay's part by writing the
RayService's status and the worker pods themselves. Schema and CEL fidelity live elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from emulated_cluster import (
    IM,
    NAMESPACE,
    RS,
    OperatorThread,
    operator_settings,
    point_client_at,
)
from modelgrid_operator import api
from modelgrid_operator.handlers import OperatorConfig
from modelgrid_operator.k8s import Client
from modelgrid_operator.settings import RenderSettings


class Cluster:
    """Test-side access to the emulated cluster: create objects over HTTP, read them back."""

    def __init__(self, kmock: Any) -> None:
        self.kmock = kmock
        self.api = kubernetes.client.ApiClient()
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self.kmock.objects[resource, NAMESPACE, name]
        except KeyError:
            return None
        return None if obj.deleted else dict(obj.raw)

    def model(self, name: str) -> dict[str, Any] | None:
        return self.get(IM, name)

    def rayservice(self, name: str) -> dict[str, Any] | None:
        return self.get(RS, name)

    def phase(self, name: str) -> str | None:
        return ((self.model(name) or {}).get("status") or {}).get("phase")

    async def create_model(self, name: str, spec: dict[str, Any], uid: str | None = None) -> None:
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
        self, model: str, *, cluster: str, pools: dict[str, int], app_status: str = "RUNNING"
    ) -> None:
        """Play KubeRay: report the application status and create ready worker pods."""
        await self.patch_rayservice(
            model,
            {
                "status": {
                    "activeServiceStatus": {
                        "rayClusterName": cluster,
                        "applicationStatuses": {model: {"status": app_status}},
                    }
                }
            },
        )
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
