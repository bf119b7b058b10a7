"""Whether a pool's running Ray cluster is outdated, and replacing it under upgrade strategy
``None``. Pure decision, one async apply.

KubeRay decides that a RayCluster must change by a hash of ``rayClusterConfig`` without the
fields it leaves to the autoscaler and to external controllers: replicas, ``minReplicas``,
``maxReplicas``, ``workersToDelete``, tolerations and scheduling gates, ``suspend``
(``GenerateHashWithoutReplicasAndWorkersToDelete``, ``rayClusterSpecForHashing``). The same
fields are left out here, so "outdated" means what KubeRay would act on: a new image, resources,
``num-gpus``, node selector, volumes, env, ``enableInTreeAutoscaling``. (The left-out fields
reach the cluster through :mod:`.scaling`.)

Under ``upgradeStrategy: NewCluster`` KubeRay starts the new cluster itself. Under ``None``
(:mod:`.render.upgrade`: a second copy would need more accelerators than the surge limit) it
never does (``isZeroDowntimeUpgradeEnabled`` is false in ``shouldPrepareNewCluster``), so the
operator deletes the outdated active cluster; KubeRay, finding neither an active nor a pending
cluster, prepares one from the current spec. The pool does not serve until that one is ready.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from modelgrid_operator.clusters import Clusters, RayClusterApi
from modelgrid_operator.drift import spec_matches
from modelgrid_operator.render.upgrade import RECREATE

_GROUP_FIELDS_KUBERAY_IGNORES = ("replicas", "minReplicas", "maxReplicas", "scaleStrategy")
_POD_FIELDS_KUBERAY_IGNORES = ("tolerations", "schedulingGates")


def _hashed_part(cluster_spec: Mapping[str, Any]) -> dict[str, Any]:
    """``cluster_spec`` without the fields KubeRay's cluster hash leaves out."""
    spec = copy.deepcopy(dict(cluster_spec))
    spec.pop("suspend", None)
    spec.pop("upgradeStrategy", None)
    groups = [spec.get("headGroupSpec") or {}, *(spec.get("workerGroupSpecs") or [])]
    for group in groups:
        for field in _GROUP_FIELDS_KUBERAY_IGNORES:
            group.pop(field, None)
        pod = (group.get("template") or {}).get("spec") or {}
        for field in _POD_FIELDS_KUBERAY_IGNORES:
            pod.pop(field, None)
    return spec


def is_outdated(cluster: Mapping[str, Any], desired_rayservice: Mapping[str, Any]) -> bool:
    """True when the live RayCluster differs from the rendered ``rayClusterConfig`` in a field
    KubeRay's cluster hash covers: KubeRay would start a new cluster (or, under ``None``, never
    change this one)."""
    live = _hashed_part(cluster.get("spec") or {})
    desired = _hashed_part(desired_rayservice["spec"]["rayClusterConfig"])
    return not spec_matches({"rayClusterConfig": live}, {"rayClusterConfig": desired})


def must_recreate(clusters: Clusters, desired_rayservice: Mapping[str, Any]) -> bool:
    """Under strategy ``None``, with no new cluster on the way: is the serving one outdated?"""
    strategy = (desired_rayservice["spec"].get("upgradeStrategy") or {}).get("type")
    return (
        strategy == RECREATE
        and clusters.active is not None
        and clusters.pending is None
        and is_outdated(clusters.active, desired_rayservice)
    )


async def replace_outdated(
    client: RayClusterApi, clusters: Clusters, desired_rayservice: Mapping[str, Any]
) -> str:
    """Delete the outdated active cluster when :func:`must_recreate`; return its name, or ""."""
    active = clusters.active
    if active is None or not must_recreate(clusters, desired_rayservice):
        return ""
    meta = active["metadata"]
    await client.delete_raycluster(meta["namespace"], meta["name"])
    return str(meta["name"])
