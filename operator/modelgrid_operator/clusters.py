"""The Ray clusters KubeRay runs for a RayService: which ones, read owner-checked. Reading only.

A RayService's status names its serving cluster (``activeServiceStatus.rayClusterName``) and,
while a changed one starts, the next (``pendingServiceStatus.rayClusterName``). The operator
writes to a RayCluster only where KubeRay leaves a gap (:mod:`.scaling`, :mod:`.updates`), and
only to one whose controller is the RayService it read: a cluster of that name made by someone
else is not touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from modelgrid_operator.ownership import is_owned_by


class RayClusterApi(Protocol):
    """The RayCluster calls of the API client (``k8s.Client``) that the cluster modules use."""

    async def get_raycluster(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_raycluster(
        self, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]: ...

    async def delete_raycluster(self, namespace: str, name: str) -> bool: ...


@dataclass(frozen=True)
class Clusters:
    """A RayService's Ray clusters as read now (None: named by no status, gone, or not the
    RayService's own)."""

    active: dict[str, Any] | None = None
    pending: dict[str, Any] | None = None


def cluster_names(rayservice: Mapping[str, Any]) -> tuple[str, str]:
    """(active, pending) cluster names from the RayService's status ("" when none)."""
    status = rayservice.get("status") or {}
    return (
        (status.get("activeServiceStatus") or {}).get("rayClusterName") or "",
        (status.get("pendingServiceStatus") or {}).get("rayClusterName") or "",
    )


async def read_clusters(client: RayClusterApi, rayservice: dict[str, Any]) -> Clusters:
    """Read the active and pending RayClusters of ``rayservice``; one not controlled by it
    (KubeRay sets itself the RayService as controller) counts as absent."""
    meta = rayservice["metadata"]
    uid = meta.get("uid") or ""
    found = []
    for name in cluster_names(rayservice):
        cluster = await client.get_raycluster(meta["namespace"], name) if name else None
        found.append(cluster if cluster is not None and is_owned_by(cluster, uid) else None)
    return Clusters(*found)
