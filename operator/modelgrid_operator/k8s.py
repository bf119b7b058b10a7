"""The operator's few Kubernetes calls: read a model and write its status; list, read, create,
patch and delete RayServices; read, patch and delete a RayCluster (what KubeRay itself leaves
alone: bounds, tolerations, an outdated cluster under upgrade strategy ``None``); read, create and
patch a NetworkPolicy; list pods and nodes.

Everything that talks to the API server is here, so handlers stay about diffing and status,
and tests can count exactly which calls a reconcile made. The official client is synchronous;
calls run in a worker thread so kopf's event loop keeps serving other objects.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from modelgrid_operator import api
from modelgrid_operator.render.metadata import MODEL_LABEL

RAY_GROUP, RAY_VERSION, RAY_PLURAL = "ray.io", "v1", "rayservices"
RAY_CLUSTERS = "rayclusters"
logger = logging.getLogger(__name__)


class KubeRayMissing(RuntimeError):
    """The cluster has no RayService CRD: KubeRay is not installed."""


@dataclass
class Client:
    """A thin async facade over the official client's two API groups we use."""

    api_client: kubernetes.client.ApiClient

    @classmethod
    def from_environment(cls) -> Client:
        """In a pod: the service account; elsewhere: the kubeconfig (``$KUBECONFIG``)."""
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        return cls(kubernetes.client.ApiClient())

    @property
    def _custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client)

    @property
    def _core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api_client)

    async def get_model(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The InferenceModel as stored now, or None when it is gone."""
        try:
            return await asyncio.to_thread(
                self._custom.get_namespaced_custom_object,
                api.GROUP,
                api.VERSION,
                namespace,
                api.PLURAL,
                name,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def patch_model_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """JSON-merge-patch the model's ``status`` subresource; False when the model is gone."""
        try:
            await asyncio.to_thread(
                self._custom.patch_namespaced_custom_object_status,
                api.GROUP,
                api.VERSION,
                namespace,
                api.PLURAL,
                name,
                {"status": status},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _rayservices(
        self, call: Callable[..., Any], namespace: str, *args: Any, **kwargs: Any
    ) -> Any:
        """``call`` (a CustomObjectsApi method) on the RayServices of ``namespace``, in a thread:
        the client blocks, the operator's event loop must not."""
        return await asyncio.to_thread(
            call, RAY_GROUP, RAY_VERSION, namespace, RAY_PLURAL, *args, **kwargs
        )

    async def get_rayservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The RayService, or None when it does not exist."""
        try:
            return await self._rayservices(
                self._custom.get_namespaced_custom_object, namespace, name
            )
        except ApiException as exc:
            if exc.status == 404 and _is_missing_resource(exc):
                raise KubeRayMissing(_KUBERAY_MISSING) from None
            if exc.status == 404:
                return None
            raise

    async def list_rayservices(self, namespace: str, model: str) -> list[dict[str, Any]]:
        """The RayServices labelled with the model's name (one per pool), whoever made them:
        the caller checks ownership before it deletes one. Used when a model is deleted; a
        reconcile reads each RayService by name instead (``pool_services``).
        """
        try:
            result = await self._rayservices(
                self._custom.list_namespaced_custom_object,
                namespace,
                label_selector=f"{MODEL_LABEL}={model}",
            )
        except ApiException as exc:
            if exc.status == 404:
                raise KubeRayMissing(_KUBERAY_MISSING) from None
            raise
        items = result.get("items") or []
        return [i for i in items if (i["metadata"].get("labels") or {}).get(MODEL_LABEL) == model]

    async def create_rayservice(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a RayService; a 409 returns the object that exists under that name, which the
        caller must check is its own (``ownership.is_owned_by``) before it writes to it."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            created = await self._rayservices(
                self._custom.create_namespaced_custom_object, namespace, body
            )
        except ApiException as exc:
            if exc.status == 404:
                raise KubeRayMissing(_KUBERAY_MISSING) from None
            if exc.status != 409:
                raise
            created = None
        # The client deserialises only a 201 (or a 409 gave us nothing): read what is stored.
        stored = created or await self.get_rayservice(namespace, name)
        if stored is None:
            raise ApiException(
                status=404, reason=f"RayService {namespace}/{name} vanished after create"
            )
        return stored

    async def patch_rayservice(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON-merge-patch a RayService (lists in the patch replace the stored ones)."""
        return await self._rayservices(
            self._custom.patch_namespaced_custom_object, namespace, name, patch
        )

    async def delete_rayservice(self, namespace: str, name: str) -> bool:
        """Delete a RayService; False when it was already gone."""
        try:
            await self._rayservices(self._custom.delete_namespaced_custom_object, namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _rayclusters(
        self, call: Callable[..., Any], namespace: str, *args: Any, **kwargs: Any
    ) -> Any:
        """``call`` on the RayClusters of ``namespace``, in a thread (see :meth:`_rayservices`)."""
        return await asyncio.to_thread(
            call, RAY_GROUP, RAY_VERSION, namespace, RAY_CLUSTERS, *args, **kwargs
        )

    async def get_raycluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A RayCluster (KubeRay's, made for a RayService), or None when it does not exist."""
        try:
            return await self._rayclusters(
                self._custom.get_namespaced_custom_object, namespace, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def patch_raycluster(
        self, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """JSON-patch (RFC 6902) a RayCluster: operations address one worker group by index and
        ``test`` its name first, so a list that changed meanwhile refuses the patch (422)."""
        return await self._rayclusters(
            self._custom.patch_namespaced_custom_object,
            namespace,
            name,
            operations,
            _content_type="application/json-patch+json",
        )

    async def delete_raycluster(self, namespace: str, name: str) -> bool:
        """Delete a RayCluster; False when it was already gone."""
        try:
            await self._rayclusters(self._custom.delete_namespaced_custom_object, namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    @property
    def _networking(self) -> kubernetes.client.NetworkingV1Api:
        return kubernetes.client.NetworkingV1Api(self.api_client)

    async def get_network_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The NetworkPolicy as stored (a plain dict), or None when it does not exist."""
        try:
            result = await asyncio.to_thread(
                self._networking.read_namespaced_network_policy,
                name,
                namespace,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _json(result)

    async def create_network_policy(self, body: dict[str, Any]) -> None:
        """Create a NetworkPolicy."""
        await asyncio.to_thread(
            self._networking.create_namespaced_network_policy,
            body["metadata"]["namespace"],
            body,
            _preload_content=False,
        )

    async def patch_network_policy(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Patch a NetworkPolicy (its lists have no merge keys: a patch's lists replace)."""
        await asyncio.to_thread(
            self._networking.patch_namespaced_network_policy,
            name,
            namespace,
            patch,
            _preload_content=False,
        )

    async def list_model_pods(self, namespace: str, model: str) -> list[dict[str, Any]]:
        """Pods labelled with the model's name (head and workers of its Ray clusters)."""
        selector = f"{MODEL_LABEL}={model}"
        result = await asyncio.to_thread(
            self._core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            _preload_content=False,
        )
        items = _json(result).get("items") or []
        # Filter again: label selectors are the server's job, but cheap to double-check.
        return [
            p
            for p in items
            if (p.get("metadata", {}).get("labels") or {}).get(MODEL_LABEL) == model
        ]

    async def list_nodes(self) -> list[dict[str, Any]] | None:
        """Every Node (labels and allocatable resources, for the memory admission check), or
        None when they cannot be read (e.g. RBAC without ``list nodes``): then nothing is refused.
        """
        try:
            result = await asyncio.to_thread(self._core.list_node, _preload_content=False)
        except ApiException as exc:
            logger.warning(
                "cannot list nodes (%s %s): memory admission is off", exc.status, exc.reason
            )
            return None
        return list(_json(result).get("items") or [])


_KUBERAY_MISSING = (
    "the cluster has no ray.io/v1 RayService API: install KubeRay "
    "(helm install kuberay-operator kuberay/kuberay-operator) and the model will roll out"
)


def _is_missing_resource(exc: ApiException) -> bool:
    """A 404 for the resource type itself (no CRD), not for one object."""
    body = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body or "")
    return "could not find the requested resource" in body or "404 page not found" in body


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)
