"""Put a pool's replica bounds and tolerations into its running Ray cluster. Pure decision,
one async apply.

KubeRay builds a RayCluster from ``rayClusterConfig`` once, then compares a hash of that config
without replicas, ``minReplicas``, ``maxReplicas``, ``workersToDelete`` and tolerations
(``GenerateHashWithoutReplicasAndWorkersToDelete`` in its utils/util.go) to decide whether the
cluster must change. An edit of only those fields therefore never reaches the running cluster:
a fixed pool never gets its new pods, an autoscaled one stays capped at its old maximum, new
workers keep the old tolerations. The operator closes that gap itself: it JSON-patches the
pool's worker group in the live RayCluster (active, and pending while one starts).

``replicas`` is the autoscaler's to move within the bounds, so it is clamped into the new
bounds, never reset: a pool that the autoscaler grew to 3 of 1..4 stays at 3 when its maximum
becomes 6, and goes to 2 when it becomes 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelgrid_operator.clusters import Clusters, RayClusterApi

Operation = dict[str, Any]
"""One RFC 6902 operation."""


def _tolerations(group: Mapping[str, Any]) -> list[Any]:
    return list(((group.get("template") or {}).get("spec") or {}).get("tolerations") or [])


def bounds_patch(cluster: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Operation] | None:
    """The JSON patch that brings the worker group named like ``desired`` (a rendered worker
    group) in ``cluster`` (a live RayCluster) to the rendered bounds and tolerations, or None
    when they already hold (or the cluster has no such group: KubeRay builds it from the spec).

    The patch first tests the group's name at its index, so a list reordered meanwhile makes
    the API server refuse it instead of changing another group.
    """
    groups = (cluster.get("spec") or {}).get("workerGroupSpecs") or []
    index = next(
        (i for i, g in enumerate(groups) if g.get("groupName") == desired["groupName"]), None
    )
    if index is None:
        return None
    live, path = groups[index], f"/spec/workerGroupSpecs/{index}"
    low, high = desired["minReplicas"], desired["maxReplicas"]
    operations: list[Operation] = []
    for field, value in (("minReplicas", low), ("maxReplicas", high)):
        if live.get(field) != value:
            operations.append({"op": "add", "path": f"{path}/{field}", "value": value})
    current = live.get("replicas")
    replicas = low if current is None else min(max(current, low), high)
    if current != replicas:
        operations.append({"op": "add", "path": f"{path}/replicas", "value": replicas})
    wanted = _tolerations(desired)
    if _tolerations(live) != wanted:
        operations.append(
            {"op": "add", "path": f"{path}/template/spec/tolerations", "value": wanted}
        )
    if not operations:
        return None
    return [{"op": "test", "path": f"{path}/groupName", "value": desired["groupName"]}, *operations]


async def apply_bounds(
    client: RayClusterApi, clusters: Clusters, desired_rayservice: Mapping[str, Any]
) -> list[str]:
    """Patch the pool's bounds and tolerations into each of its live clusters that lacks them;
    return the names of the clusters patched."""
    (desired,) = desired_rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    patched = []
    for cluster in (clusters.active, clusters.pending):
        if cluster is None or (operations := bounds_patch(cluster, desired)) is None:
            continue
        meta = cluster["metadata"]
        await client.patch_raycluster(meta["namespace"], meta["name"], operations)
        patched.append(meta["name"])
    return patched
