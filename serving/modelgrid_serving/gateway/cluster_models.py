"""The admin API's models in Kubernetes mode: InferenceModels in one namespace.

The gateway writes them with its own service account, which the chart lets create, get, list
and delete InferenceModels in that namespace and nothing else; the operator does the rest, as
for a model applied with ``kubectl``. The API server checks each object against the CRD (schema
and CEL rules) as it would any other. The blocking client runs in a thread per call.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..errors import APIError, Conflict, InvalidRequest
from .sources import GROUP, PLURAL, VERSION, api_client


class ClusterRefused(APIError, status=502, error_type="server_error", code="cluster_refused"):
    """502: the Kubernetes API refused the gateway's call (its message says why: RBAC, CRD)."""


class ClusterModels:
    """A :class:`~.admin.ModelStore` over the InferenceModels of ``namespace``.

    Args:
        namespace: Where the admin API's models go.
        api: A Kubernetes ``ApiClient`` (default: in-cluster credentials, else the kubeconfig).
    """

    def __init__(self, namespace: str, api: Any = None) -> None:
        from kubernetes import client

        self.namespace = namespace
        self._custom = client.CustomObjectsApi(api or api_client())

    def source_of(self, name: str) -> str:
        """The catalog source of the model's entry (:func:`~.sources.entry_from_inferencemodel`)."""
        return f"kubernetes:{self.namespace}/{name}"

    async def create(self, document: dict[str, Any]) -> dict[str, Any]:
        created = await self._call(
            "create_namespaced_custom_object", GROUP, VERSION, self.namespace, PLURAL, document
        )
        # An API server answers the stored object; an emulator may answer nothing.
        return created if isinstance(created, dict) and created else document

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            return await self._call(
                "get_namespaced_custom_object", GROUP, VERSION, self.namespace, PLURAL, name
            )
        except _NotFound:
            return None

    async def list(self) -> list[dict[str, Any]]:
        listed = await self._call(
            "list_namespaced_custom_object", GROUP, VERSION, self.namespace, PLURAL
        )
        return list(listed.get("items") or [])

    async def delete(self, name: str, uid: str | None) -> None:
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            await self._call(
                "delete_namespaced_custom_object",
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                body=body,
            )
        except _NotFound:
            pass

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return await asyncio.to_thread(getattr(self._custom, method), *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise _NotFound from None
            message = _message(exc)
            if exc.status == 422:  # the CRD's schema or a CEL rule: the field is in the message
                raise InvalidRequest(f"The cluster refused the model: {message}") from None
            if exc.status == 409:
                raise Conflict(f"A model of that name exists: {message}", param="name") from None
            raise ClusterRefused(f"The Kubernetes API refused ({exc.status}): {message}") from None


class _NotFound(Exception):
    """The object (or the namespace) does not exist."""


def _message(exc: Any) -> str:
    """The API server's own message (a Status object's), else the reason."""
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)
