"""Bounds and tolerations put into the live RayCluster, as data (``scaling.bounds_patch``).

KubeRay's ``GenerateHashWithoutReplicasAndWorkersToDelete`` (ray-operator/controllers/ray/
utils/util.go, v1.6/v1.7) clears replicas, minReplicas, maxReplicas, workersToDelete and
tolerations before it compares a RayService's cluster config with its running RayCluster, so
an edit of only those never reaches the cluster through KubeRay. These tests pin what the
operator patches instead.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from factories import make_model, pool
from modelgrid_operator.scaling import bounds_patch
from modelgrid_operator.updates import is_outdated
from rendered import pool_rayservice

pytestmark = pytest.mark.unit

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
EXTRA_TOLERATION = {"key": "modelgrid.io/reserved", "operator": "Exists", "effect": "NoSchedule"}


def _rayservice(**fields: Any) -> dict[str, Any]:
    return pool_rayservice(make_model(pools=[pool("gpu", "nvidia", **fields)]))


def _kuberay_cluster(rayservice: dict[str, Any], **group: Any) -> dict[str, Any]:
    """The RayCluster KubeRay built from ``rayservice`` (``constructRayClusterForRayService``:
    the spec copied), with the worker group as the autoscaler left it."""
    spec = copy.deepcopy(rayservice["spec"]["rayClusterConfig"])
    spec["workerGroupSpecs"][0].update(group)
    return {"metadata": {"name": "c1", "namespace": "ml"}, "spec": spec}


def _group(rayservice: dict[str, Any]) -> dict[str, Any]:
    (group,) = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return group


def test_scaling_a_raised_maximum_reaches_the_cluster_and_keeps_the_autoscalers_count():
    live = _kuberay_cluster(_rayservice(minReplicas=1, maxReplicas=4), replicas=3)
    edited = _rayservice(minReplicas=1, maxReplicas=6)
    # KubeRay sees no change to act on ...
    assert not is_outdated(live, edited)
    # ... so the operator patches the group itself, leaving the autoscaler's 3 alone.
    assert bounds_patch(live, _group(edited)) == [
        {"op": "test", "path": "/spec/workerGroupSpecs/0/groupName", "value": "gpu"},
        {"op": "add", "path": "/spec/workerGroupSpecs/0/maxReplicas", "value": 6},
    ]


def test_scaling_a_lowered_maximum_clamps_the_replicas():
    live = _kuberay_cluster(_rayservice(minReplicas=1, maxReplicas=4), replicas=4)
    operations = bounds_patch(live, _group(_rayservice(minReplicas=1, maxReplicas=2)))
    assert operations is not None
    assert {"op": "add", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2} in operations


def test_scaling_a_fixed_pool_gets_its_new_pods():
    """A fixed pool (min = max): its replicas are the bound, or it never gets its new pods."""
    live = _kuberay_cluster(_rayservice(minReplicas=2))
    assert live["spec"]["workerGroupSpecs"][0]["replicas"] == 2
    operations = bounds_patch(live, _group(_rayservice(minReplicas=3)))
    assert operations is not None
    assert {op["path"].rsplit("/", 1)[-1]: op["value"] for op in operations[1:]} == {
        "minReplicas": 3,
        "maxReplicas": 3,
        "replicas": 3,
    }


def test_scaling_new_tolerations_reach_the_cluster():
    live = _kuberay_cluster(_rayservice())
    edited = _rayservice(tolerations=[EXTRA_TOLERATION])
    assert not is_outdated(live, edited)  # KubeRay's hash leaves tolerations out
    operations = bounds_patch(live, _group(edited))
    assert operations == [
        {"op": "test", "path": "/spec/workerGroupSpecs/0/groupName", "value": "gpu"},
        {
            "op": "add",
            "path": "/spec/workerGroupSpecs/0/template/spec/tolerations",
            "value": [GPU_TOLERATION, EXTRA_TOLERATION],
        },
    ]


def test_scaling_nothing_to_patch_when_the_cluster_holds_the_spec():
    rayservice = _rayservice(minReplicas=1, maxReplicas=4)
    assert bounds_patch(_kuberay_cluster(rayservice, replicas=2), _group(rayservice)) is None


def test_scaling_a_cluster_without_the_group_is_left_to_kuberay():
    rayservice = _rayservice()
    live = _kuberay_cluster(rayservice)
    live["spec"]["workerGroupSpecs"][0]["groupName"] = "other"
    assert bounds_patch(live, _group(rayservice)) is None
