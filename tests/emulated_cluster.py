"""kmock set up as our cluster, and the real operator run beside it in a thread of its own.

Shared by the operator integration tests (their fixtures are in
``tests/integration/operator/conftest.py``) and ``bench/operator.py``. Nothing here starts
kmock: pytest's ``kmock`` fixture does for the tests, the bench does it itself. Test modules
import from here, not from ``conftest``: that name belongs to whichever conftest.py was
imported first (``tests/unit/chart`` has one too).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import kmock
import kopf
import yaml
from modelgrid_operator import api
from modelgrid_operator.handlers import OperatorConfig, build_registry

NAMESPACE = "default"
IM = f"{api.GROUP}/{api.VERSION}/{api.PLURAL}"
RS = "ray.io/v1/rayservices"
RC = "ray.io/v1/rayclusters"
VERBS = {"list", "watch", "get", "create", "patch", "update", "delete"}


def declare_resources(emulator: Any) -> None:
    """Declare the built-in resources, InferenceModel, RayService and RayCluster (each with
    ``/status``)."""
    emulator.resources.load_bundled()
    emulator.resources[IM] = _resource_info(api.KIND, api.SINGULAR)
    emulator.resources[RS] = _resource_info("RayService", "rayservice")
    emulator.resources[RC] = _resource_info("RayCluster", "raycluster")


def _resource_info(kind: str, singular: str) -> kmock.ResourceInfo:
    return kmock.ResourceInfo(
        kind=kind, singular=singular, namespaced=True, subresources={"status"}, verbs=VERBS
    )


def write_kubeconfig(path: Path, server: str) -> Path:
    """Write a kubeconfig for ``server`` (kmock's URL) to ``path`` and return the path."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": server.rstrip("/")}}],
                "users": [{"name": "kmock", "user": {"token": "test"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
            }
        )
    )
    return path


def point_client_at(emulator: Any, kubeconfig: Path, monkeypatch: Any) -> Any:
    """Declare our resources on ``emulator`` (kmock), write ``kubeconfig`` for it, and point the
    kubernetes client at it: this process (which read ``$KUBECONFIG`` when it was imported) and
    the processes it starts. Returns an ``ApiClient``."""
    import kubernetes

    declare_resources(emulator)
    write_kubeconfig(kubeconfig, str(emulator.url))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(
        kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)
    )
    kubernetes.config.load_kube_config(config_file=str(kubeconfig))
    return kubernetes.client.ApiClient()


def operator_settings(*, events: bool = False) -> kopf.OperatorSettings:
    """kopf settings for running against kmock.

    Args:
        events: post Kubernetes Events. kmock cannot name objects from ``generateName``, so
            every event after the first is refused with 409; the requests are still recorded.
    """
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.watching.server_timeout = 5
    settings.posting.enabled = events
    return settings


class OperatorThread:
    """The real operator in its own thread and event loop.

    kopf cancels every task created in its loop after it started when it stops (it cannot tell
    its own from others'), which would take kmock's server down with it; a loop of its own keeps
    a killed operator from killing the emulated API server.
    """

    def __init__(
        self,
        config: OperatorConfig,
        settings: kopf.OperatorSettings,
        namespaces: tuple[str, ...] = (NAMESPACE,),
    ) -> None:
        self._config, self._settings, self._namespaces = config, settings, namespaces
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(
            kopf.operator(
                registry=build_registry(self._config),
                settings=self._settings,
                namespaces=list(self._namespaces),
                standalone=True,
            )
        )
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            self._loop.run_until_complete(self._task)
        # A cancelled kopf leaves some of its tasks pending: end them before closing the loop.
        leftovers = asyncio.all_tasks(self._loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            self._loop.run_until_complete(asyncio.wait(leftovers, timeout=5))
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()
        # kopf runs sync handlers in its settings' executor and never shuts it down (a process
        # runs one operator); here each test starts its own, so end its threads with it.
        self._settings.execution.executor.shutdown(wait=True, cancel_futures=True)

    def start(self) -> OperatorThread:
        self._thread.start()
        self._started.wait(10)
        return self

    async def stop(self) -> None:
        """Kill the operator wherever it is (handlers mid-flight included) and wait for it."""
        if self._task is not None and not self._task.done():
            self._loop.call_soon_threadsafe(self._task.cancel)
        await asyncio.to_thread(self._thread.join, 30)
