"""What each kind of spec change does to a pool's Ray cluster, as data: the upgrade strategy
stated per RayService, when the running cluster is outdated (by KubeRay's own measure), when
the operator replaces it, when a new cluster is late, and that pools never disturb each other.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import make_model, pool
from modelgrid_operator import api
from modelgrid_operator.clusters import Clusters
from modelgrid_operator.progress import judge_progress
from modelgrid_operator.render import render_rayservices
from modelgrid_operator.render.upgrade import surge_accelerators, upgrade_strategy
from modelgrid_operator.settings import RenderSettings
from modelgrid_operator.updates import is_outdated, must_recreate
from modelgrid_operator.validation import load_models
from rendered import pool_rayservice

pytestmark = pytest.mark.unit

SETTINGS = RenderSettings()
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _cluster(rayservice: dict[str, Any], name: str = "c1") -> dict[str, Any]:
    """KubeRay's RayCluster for ``rayservice`` (``constructRayClusterForRayService``), with the
    defaults KubeRay's CRD schema fills in."""
    spec = copy.deepcopy(rayservice["spec"]["rayClusterConfig"])
    for group in spec["workerGroupSpecs"]:
        group["numOfHosts"] = 1
    return {"metadata": {"name": name, "namespace": "ml"}, "spec": spec}


# Upgrade strategy: ``isZeroDowntimeUpgradeEnabled`` treats a missing strategy as NewCluster.


@pytest.mark.parametrize(
    ("pools", "engine_args", "surge", "strategy"),
    [
        ([pool("cpu", "cpu", minReplicas=8)], {}, 0, "NewCluster"),
        ([pool("gpu", "nvidia", minReplicas=2)], {"tensorParallelSize": 2}, 4, "NewCluster"),
        ([pool("gpu", "nvidia")], {"tensorParallelSize": 8}, 8, "None"),
        ([pool("mac", "apple", minReplicas=5)], {}, 5, "None"),
    ],
)
def test_updates_strategy_is_said_and_new_cluster_only_within_the_surge_limit(
    pools, engine_args, surge, strategy
):
    model = make_model(pools=pools, engine="auto", engineArgs=engine_args)
    (rayservice,) = render_rayservices(model, settings=SETTINGS)
    assert surge_accelerators(model, model.spec.pools[0]) == surge
    assert rayservice["spec"]["upgradeStrategy"] == {"type": strategy}


def test_updates_surge_limit_is_the_operators_setting():
    model = make_model(engineArgs={"tensorParallelSize": 8})
    wide = RenderSettings(upgrade_surge_limit=8)
    assert upgrade_strategy(model, model.spec.pools[0], wide) == {"type": "NewCluster"}


def test_updates_every_example_says_its_strategy():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for model in load_models(path):
            for rayservice in render_rayservices(model, settings=SETTINGS):
                assert rayservice["spec"]["upgradeStrategy"]["type"] in ("NewCluster", "None")


# Outdated: ``GenerateHashWithoutReplicasAndWorkersToDelete`` and ``rayClusterSpecForHashing``.


@pytest.mark.parametrize(
    ("change", "outdated"),
    [
        ({"pools": [pool("gpu", "nvidia", minReplicas=1, maxReplicas=3)]}, True),  # autoscaler
        ({"pools": [pool("gpu", "nvidia", nodeSelector={"nvidia.com/gpu.product": "H100"})]}, True),
        ({"engineArgs": {"tensorParallelSize": 2}}, True),  # num-gpus and the GPU limit
        ({"model": {"uri": "pvc://weights/demo"}}, True),  # volumes
        (
            {
                "pools": [
                    pool(
                        "gpu",
                        "nvidia",
                        tolerations=[{"key": "modelgrid.io/x", "operator": "Exists"}],
                    )
                ]
            },
            False,
        ),
        ({"serving": {"maxConcurrentRequests": 7}}, False),  # Serve config only
    ],
)
def test_updates_outdated_means_what_kuberays_cluster_hash_sees(change, outdated):
    live = _cluster(pool_rayservice(make_model()))
    assert is_outdated(live, pool_rayservice(make_model(**change))) is outdated


def test_updates_server_defaults_and_an_autoscaled_count_are_not_outdated():
    rayservice = pool_rayservice(make_model(pools=[pool("gpu", "nvidia", maxReplicas=4)]))
    live = _cluster(rayservice)
    live["spec"]["workerGroupSpecs"][0].update(replicas=3, scaleStrategy={"workersToDelete": []})
    live["spec"]["suspend"] = False
    assert not is_outdated(live, rayservice)


def test_updates_operator_replaces_an_outdated_cluster_only_under_none_with_nothing_pending():
    """Under ``None``, ``shouldPrepareNewCluster`` never prepares a cluster: the operator deletes
    the outdated one and KubeRay, finding neither active nor pending, builds one anew."""
    wide = make_model(engineArgs={"tensorParallelSize": 8})
    before = pool_rayservice(wide)
    after = pool_rayservice(
        make_model(
            engineArgs={"tensorParallelSize": 8},
            engine="vllm",
            pools=[pool("gpu", "nvidia", nodeSelector={"nvidia.com/gpu.product": "H100"})],
        )
    )
    assert after["spec"]["upgradeStrategy"] == {"type": "None"}
    active = _cluster(before)
    assert must_recreate(Clusters(active=active), after)
    assert not must_recreate(Clusters(active=active), before)  # not outdated
    assert not must_recreate(Clusters(active=active, pending=_cluster(after, "c2")), after)
    narrow = make_model(pools=[pool("gpu", "nvidia", nodeSelector={"nvidia.com/x": "y"})])
    newcluster = pool_rayservice(narrow)
    assert newcluster["spec"]["upgradeStrategy"] == {"type": "NewCluster"}
    assert not must_recreate(Clusters(active=_cluster(pool_rayservice(make_model()))), newcluster)


# Pools apart: ``shouldUpdateCluster`` / ``modifyRayCluster`` copy the goal spec over the live
# cluster (resetting autoscaled groups to their rendered replicas) when groups are appended.


@pytest.mark.parametrize(
    "other_pools",
    [
        [pool("mac", "apple")],  # appended
        [pool("a-first", "cpu"), pool("mac", "apple")],  # one before, one after
    ],
)
def test_updates_adding_or_moving_pools_leaves_every_other_pools_rayservice_as_it_was(
    other_pools,
):
    gpu = pool("gpu", "nvidia", minReplicas=1, maxReplicas=4)
    alone = render_rayservices(make_model(pools=[gpu]), settings=SETTINGS)
    together = render_rayservices(make_model(pools=[*other_pools, gpu]), settings=SETTINGS)
    (same,) = [rs for rs in together if rs["metadata"]["labels"]["modelgrid.io/pool"] == "gpu"]
    assert same == alone[0]
    assert all(len(rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]) == 1 for rs in together)


# Progress: KubeRay waits for a pending cluster without a deadline.


def _rayservice_upgrading(app: dict[str, str] | None = None) -> dict[str, Any]:
    status = {
        "activeServiceStatus": {
            "rayClusterName": "demo-gpu-old",
            "applicationStatuses": {"demo-gpu": {"status": "RUNNING"}},
        },
        "pendingServiceStatus": {
            "rayClusterName": "demo-gpu-new",
            "applicationStatuses": {"demo-gpu": app} if app else {},
        },
    }
    return {"metadata": {"name": "demo-gpu-abcde"}, "status": status}


def test_progress_a_pending_cluster_past_the_deadline_says_what_it_lacks():
    model = make_model(pools=[pool("gpu", "nvidia", minReplicas=2)])
    pods = [
        {
            "metadata": {"labels": {"modelgrid.io/pool": "gpu", "ray.io/cluster": cluster}},
            "status": {"conditions": [{"type": "Ready", "status": status}]},
        }
        for cluster, status in (
            ("demo-gpu-new", "True"),
            ("demo-gpu-new", "False"),
            ("demo-gpu-old", "True"),
        )
    ]
    rayservices = {"gpu": _rayservice_upgrading()}
    since = {"gpu": T0}
    on_time = judge_progress(
        model, rayservices, pods, since, deadline_seconds=900, now=T0 + timedelta(seconds=900)
    )
    assert on_time == (
        True,
        api.Reason.NEW_CLUSTER_STARTING,
        "pool gpu: Ray cluster demo-gpu-new is starting",
    )
    late = judge_progress(
        model, rayservices, pods, since, deadline_seconds=900, now=T0 + timedelta(seconds=901)
    )
    assert late == (
        False,
        api.Reason.PROGRESS_DEADLINE_EXCEEDED,
        (
            "pool gpu: Ray cluster demo-gpu-new is not serving after 900s: 1/2 workers ready, "
            "application not deployed; cluster demo-gpu-old keeps serving"
        ),
    )


def test_progress_names_the_applications_state_and_nothing_pending_is_up_to_date():
    model = make_model()
    failing = {"status": "DEPLOY_FAILED", "message": "CUDA out of memory"}
    late = judge_progress(
        model,
        {"gpu": _rayservice_upgrading(failing)},
        [],
        {"gpu": T0},
        deadline_seconds=60,
        now=T0 + timedelta(hours=1),
    )
    assert late[0] is False
    assert "application DEPLOY_FAILED: CUDA out of memory" in late[2]
    settled = {"gpu": {"metadata": {"name": "x"}, "status": {}}}
    assert judge_progress(model, settled, [], {}, deadline_seconds=60, now=T0)[1] is (
        api.Reason.UP_TO_DATE
    )
