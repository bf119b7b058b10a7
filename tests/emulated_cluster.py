"""kmock set up as our cluster, and the real operator run beside it in a thread of its own.

Shared by the operator integration tests (their fixtures are in
``tests/integration/operator/conftest.py``), the dashboards' Prometheus test and
``bench/operator.py``; :class:`Cluster` is how a test reads and writes the emulated cluster. Nothing here starts
kmock: pytest's ``kmock`` fixture does for the tests, the bench does it itself. Test modules
import from here, not from ``conftest``: that name belongs to whichever conftest.py was
imported first (``tests/unit/chart`` has one too).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from pathlib import Path
from typing import Any

import kmock
import kopf
import kubernetes
import yaml
from modelgrid_operator import api
from modelgrid_operator.handlers import OperatorConfig, build_registry
from modelgrid_operator.leadership import Election, lead
from modelgrid_operator.metrics import OperatorMetrics
from modelgrid_operator.render import rayservice_name
from polling import eventually

NAMESPACE = "default"
IM = f"{api.GROUP}/{api.VERSION}/{api.PLURAL}"
RS = "ray.io/v1/rayservices"
RC = "ray.io/v1/rayclusters"
GROUP_VERSIONS = {api.PLURAL: (api.GROUP, api.VERSION), "rayservices": ("ray.io", "v1")}
GROUP_VERSIONS["rayclusters"] = GROUP_VERSIONS["rayservices"]
VERBS = {"list", "watch", "get", "create", "patch", "update", "delete"}


def declare_resources(emulator: Any) -> None:
    """Declare the built-in resources, InferenceModel, RayService and RayCluster (each with
    ``/status``)."""
    emulator.resources.load_bundled()
    emulator.resources[IM] = _resource_info(api.KIND, api.SINGULAR)
    emulator.resources[RS] = _resource_info("RayService", "rayservice")
    emulator.resources[RC] = _resource_info("RayCluster", "raycluster")
    serve_lease_replace(emulator)


def serve_lease_replace(emulator: Any) -> None:
    """Serve what kmock does not: replacing a Lease (PUT), with the API server's check of the
    resourceVersion sent.

    Leader election takes and renews its Lease by replacing it, and the API server refuses a
    replace whose resourceVersion is no longer the stored one (409 Conflict): that is what keeps
    two candidates from both taking a free Lease. kmock answers no PUT and keeps no
    resourceVersion; here each replace stores a new version with the Lease's own counter, and
    a stale one is refused as the API server would.
    """

    def replace(request: Any) -> dict[str, Any]:
        key = (request.resource, request.namespace, request.name)
        if key not in emulator.objects or emulator.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        stored = emulator.objects[key]
        current = (stored.raw.get("metadata") or {}).get("resourceVersion")
        sent = (request.data.get("metadata") or {}).get("resourceVersion")
        if sent != current:
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message=f"the object has been modified (resourceVersion {sent}, now {current})",
            )
        body = copy.deepcopy(request.data)
        body.setdefault("metadata", {})["resourceVersion"] = str(int(current or 0) + 1)
        stored.create(body)
        return body

    emulator["put leases"] << replace


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


def inference_model(name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """An InferenceModel as a client creates it, in the test namespace, with the uid, version
    and generation an API server would assign (kmock assigns none of these); ``metadata``
    overrides or adds fields (``namespace``, ``uid``, ``creationTimestamp`` ...)."""
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "generation": 1,
            **metadata,
        },
        "spec": spec,
    }


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
        election: tuple[Election, kubernetes.client.ApiClient] | None = None,
    ) -> None:
        self._config, self._settings, self._namespaces = config, settings, namespaces
        self._election = election
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)
        self.ended_with: BaseException | None = None
        """What ended the operator on its own (under leader election: ``LeadershipLost``)."""

    def _operator(self) -> Any:
        return kopf.operator(
            registry=build_registry(self._config),
            settings=self._settings,
            namespaces=list(self._namespaces),
            standalone=True,
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        if self._election is None:
            self._task = self._loop.create_task(self._operator())
        else:
            self._task = self._loop.create_task(lead(*self._election, self._operator))
        self._started.set()
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001  (kept for the test to assert on)
            self.ended_with = exc
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

    @property
    def running(self) -> bool:
        """The operator has not ended (on its own or stopped)."""
        return self._thread.is_alive()

    async def stop(self) -> None:
        """Kill the operator wherever it is (handlers mid-flight included) and wait for it."""
        if self._task is not None and not self._task.done():
            self._loop.call_soon_threadsafe(self._task.cancel)
        await asyncio.to_thread(self._thread.join, 30)


class Cluster:
    """Test-side access to the emulated cluster: create objects over HTTP, read them back.

    A model's RayServices are one per pool; where a test names only the model, it means the
    model's only pool (or its first).
    """

    def __init__(self, kmock: Any, client: kubernetes.client.ApiClient | None = None) -> None:
        self.kmock = kmock
        self.api = client or kubernetes.client.ApiClient()
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.pools: dict[str, list[str]] = {}
        self.operator_metrics: list[OperatorMetrics] = []
        """The metrics of each operator a test started (they count its reconciles)."""

    def rs_name(self, model: str, pool: str | None = None) -> str:
        """The RayService name of ``model``'s pool (default: its first pool)."""
        return rayservice_name(model, pool or self.pools[model][0])

    def get(self, resource: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        try:
            obj = self.kmock.objects[resource, namespace, name]
        except KeyError:
            return None
        return None if obj.deleted else dict(obj.raw)

    def model(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        return self.get(IM, name, namespace)

    def rayservice(self, model: str, pool: str | None = None) -> dict[str, Any] | None:
        """The RayService of ``model``'s pool (default: its first pool)."""
        return self.get(RS, self.rs_name(model, pool))

    def raycluster(self, name: str) -> dict[str, Any] | None:
        return self.get(RC, name)

    def phase(self, name: str) -> str | None:
        return ((self.model(name) or {}).get("status") or {}).get("phase")

    def condition(self, name: str, kind: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        """Model ``name``'s condition of type ``kind`` (empty while it has none)."""
        status = (self.model(name, namespace) or {}).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == kind), {})

    async def condition_reaches(self, name: str, kind: str, reason: str) -> dict[str, Any]:
        """Wait until model ``name``'s condition ``kind`` has ``reason``; return that condition."""
        return await eventually(
            lambda: (found := self.condition(name, kind)).get("reason") == reason and found,
            what=f"{name}: {kind} {reason}",
        )

    def reconciles(
        self, name: str, namespace: str = NAMESPACE, by: OperatorMetrics | None = None
    ) -> int:
        """How many reconciles of model ``name`` the operators (or the one with metrics ``by``)
        have finished."""
        return int(
            sum(
                sample.value
                for metrics in ([by] if by else self.operator_metrics)
                for family in metrics.reconciles_total.collect()
                for sample in family.samples
                if sample.name.endswith("_total")
                and sample.labels.get("namespace") == namespace
                and sample.labels.get("model") == name
            )
        )

    async def reconciled(self, name: str, times: int = 2) -> None:
        """Wait until the operator has finished ``times`` more reconciles of model ``name``: a
        model's reconciles take turns, so after two, one whole reconcile has run since the call
        (a test can then say what it did not do)."""
        before = self.reconciles(name)
        await eventually(
            lambda: self.reconciles(name) >= before + times,
            what=f"{times} more reconciles of {name}",
        )

    async def custom_objects(
        self, verb: str, plural: str, *args: Any, namespace: str = NAMESPACE, status: bool = False
    ) -> Any:
        """``CustomObjectsApi.<verb>_namespaced_custom_object`` (``..._status`` for the status
        subresource) on ``plural`` (ours or KubeRay's) in ``namespace``, off the event loop
        (the kubernetes client blocks)."""
        call = getattr(self.custom, f"{verb}_namespaced_custom_object{'_status' * status}")
        group, version = GROUP_VERSIONS[plural]
        return await asyncio.to_thread(call, group, version, namespace, plural, *args)

    async def create_model(self, name: str, spec: dict[str, Any], uid: str | None = None) -> None:
        self.pools[name] = [p["name"] for p in spec.get("pools") or []]
        body = inference_model(name, spec, uid=uid or f"uid-{name}")
        await self.custom_objects("create", api.PLURAL, body)

    async def patch_model(self, name: str, patch: dict[str, Any]) -> None:
        if "pools" in patch.get("spec", {}):
            self.pools[name] = [p["name"] for p in patch["spec"]["pools"]]
        await self.custom_objects("patch", api.PLURAL, name, patch)

    async def delete_model(self, name: str) -> None:
        await self.custom_objects("delete", api.PLURAL, name)

    async def patch_rayservice(self, name: str, patch: dict[str, Any]) -> None:
        await self.custom_objects("patch", "rayservices", name, patch)

    async def delete_rayservice(self, name: str) -> None:
        await self.custom_objects("delete", "rayservices", name)

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
                await self.create_pod(pod)

    async def create_pod(self, pod: dict[str, Any]) -> None:
        """Create a pod as given, status included (kmock runs no kubelet)."""
        await asyncio.to_thread(self.core.create_namespaced_pod, NAMESPACE, pod)

    async def kubelet_says(self, pod: str, status: dict[str, Any]) -> None:
        """Play the kubelet: replace the pod's status (the lists in it replace the stored ones)."""
        await asyncio.to_thread(
            self.core.patch_namespaced_pod_status, pod, NAMESPACE, {"status": status}
        )

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
        await self.custom_objects("create", "rayclusters", body)
        status = "activeServiceStatus" if role == "active" else "pendingServiceStatus"
        await self.patch_rayservice(rs_name, {"status": {status: {"rayClusterName": name}}})
        return body

    async def patch_raycluster(self, name: str, patch: dict[str, Any]) -> None:
        await self.custom_objects("patch", "rayclusters", name, patch)

    def writes(self, resource_path: str, *methods: str) -> list[Any]:
        """Requests to a resource's URL path with one of the given HTTP methods."""
        wanted = {m.upper() for m in methods}
        return [
            r
            for r in list(self.kmock)
            if str(r.method).upper().rsplit(".", 1)[-1] in wanted and resource_path in str(r.url)
        ]
