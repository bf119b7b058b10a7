"""Run the real kopf operator in-process against kmock, kopf's Kubernetes API emulator.

kmock validates nothing and runs no controllers: tests play KubeRay's part by writing the
RayService's status and the worker pods themselves. Schema and CEL fidelity live elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kopf
import kubernetes
import pytest
import yaml

from modelgrid_operator import api
from modelgrid_operator.handlers import OperatorConfig, build_registry
from modelgrid_operator.k8s import Client

NAMESPACE = "default"
IM = f"{api.GROUP}/{api.VERSION}/{api.PLURAL}"
RS = "ray.io/v1/rayservices"
VERBS = {"list", "watch", "get", "create", "patch", "update", "delete"}


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(0.05)


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
        body = {"apiVersion": api.API_VERSION, "kind": api.KIND,
                "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid or f"uid-{name}", "resourceVersion": "1",
                             "generation": 1},
                "spec": spec}
        await asyncio.to_thread(self.custom.create_namespaced_custom_object,
                                api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, body)

    async def patch_model(self, name: str, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(self.custom.patch_namespaced_custom_object,
                                api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, name, patch)

    async def delete_model(self, name: str) -> None:
        await asyncio.to_thread(self.custom.delete_namespaced_custom_object,
                                api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, name)

    async def patch_rayservice(self, name: str, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(self.custom.patch_namespaced_custom_object,
                                "ray.io", "v1", NAMESPACE, "rayservices", name, patch)

    async def delete_rayservice(self, name: str) -> None:
        await asyncio.to_thread(self.custom.delete_namespaced_custom_object,
                                "ray.io", "v1", NAMESPACE, "rayservices", name)

    async def kuberay_serves(self, model: str, *, cluster: str, pools: dict[str, int],
                             app_status: str = "RUNNING") -> None:
        """Play KubeRay: report the application status and create ready worker pods."""
        await self.patch_rayservice(model, {"status": {"activeServiceStatus": {
            "rayClusterName": cluster,
            "applicationStatuses": {model: {"status": app_status}},
        }}})
        for pool, count in pools.items():
            for index in range(count):
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": f"{cluster}-{pool}-{index}", "namespace": NAMESPACE,
                                    "labels": {"modelgrid.io/model": model, "modelgrid.io/pool": pool,
                                               "ray.io/cluster": cluster}},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                await asyncio.to_thread(self.core.create_namespaced_pod, NAMESPACE, pod)

    def writes(self, resource_path: str, *methods: str) -> list[Any]:
        """Requests to a resource's URL path with one of the given HTTP methods."""
        wanted = {m.upper() for m in methods}
        return [r for r in list(self.kmock)
                if str(r.method).upper().rsplit(".", 1)[-1] in wanted and resource_path in str(r.url)]


@pytest.fixture()
def cluster(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """kmock with our resources declared and a kubeconfig pointing at it."""
    kmock.resources.load_bundled()
    kmock.resources[IM] = kopf_resource_info(kmock, api.KIND, api.SINGULAR)
    kmock.resources[RS] = kopf_resource_info(kmock, "RayService", "rayservice")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
        "users": [{"name": "kmock", "user": {"token": "test"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    kubernetes.config.load_kube_config(config_file=str(kubeconfig))
    return Cluster(kmock)


def kopf_resource_info(kmock: Any, kind: str, singular: str) -> Any:
    import kmock as kmock_module

    return kmock_module.ResourceInfo(kind=kind, singular=singular, namespaced=True,
                                     subresources={"status"}, verbs=VERBS)


class OperatorThread:
    """The real operator in its own thread and event loop.

    kopf cancels every task created in its loop after it started when it stops (it cannot tell
    its own from others'), which would take kmock's server down with it; a loop of its own keeps
    a killed operator from killing the emulated API server.
    """

    def __init__(self, config: OperatorConfig, settings: kopf.OperatorSettings) -> None:
        self._config, self._settings = config, settings
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(kopf.operator(
            registry=build_registry(self._config), settings=self._settings,
            namespaces=[NAMESPACE], standalone=True,
        ))
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            self._loop.run_until_complete(self._task)
        self._loop.close()

    def start(self) -> OperatorThread:
        self._thread.start()
        self._started.wait(10)
        return self

    async def stop(self) -> None:
        """Kill the operator wherever it is (handlers mid-flight included) and wait for it."""
        if self._task is not None and not self._task.done():
            self._loop.call_soon_threadsafe(self._task.cancel)
        await asyncio.to_thread(self._thread.join, 30)


@pytest.fixture()
async def operator(cluster: Cluster) -> AsyncIterator[Callable[..., Awaitable[OperatorThread]]]:
    """Start (and restart) the real operator; every one still running is stopped at teardown."""
    running: list[OperatorThread] = []

    async def start(
        refresh: float = 0.2, *, events: bool = False, client: Client | None = None
    ) -> OperatorThread:
        settings = kopf.OperatorSettings()
        settings.scanning.disabled = True
        settings.watching.server_timeout = 5
        # kmock cannot name objects from generateName, so every event after the first is
        # refused with 409; the requests are still recorded, which is what tests look at.
        settings.posting.enabled = events
        config = OperatorConfig(refresh_interval=refresh,
                                client_factory=lambda: client or Client(cluster.api))
        handle = OperatorThread(config, settings).start()
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.stop()
