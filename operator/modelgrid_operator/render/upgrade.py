"""How KubeRay should roll out a change of a pool's Ray cluster: chosen here, never defaulted.

KubeRay compares a hash of ``rayClusterConfig`` (without replicas, bounds and tolerations:
``GenerateHashWithoutReplicasAndWorkersToDelete``) with the one its running cluster was built
from. When they differ, its default, ``upgradeStrategy: NewCluster``, builds a whole second Ray
cluster beside the one that serves and switches the serve Service over once every application
on it runs (``shouldPrepareNewCluster``): no downtime, but for as long as the new cluster starts
and loads the model, the pool holds its accelerators twice. That is right for a pool of a few
accelerators and wrong for one of eight GPUs that a cluster may not have spare.

So each pool's RayService says its strategy: ``NewCluster`` when a second copy of the pool
needs at most ``settings.upgrade_surge_limit`` accelerators, else ``None``. Under ``None``
KubeRay leaves the running cluster alone (``isZeroDowntimeUpgradeEnabled`` is false), and the
operator replaces it itself: it deletes the outdated cluster, and KubeRay, finding no cluster,
builds one from the current spec (:mod:`modelgrid_operator.updates`). The pool then stops
serving until the new cluster is ready; the other pools, in RayServices of their own, serve on.
"""

from __future__ import annotations

from typing import Any

from modelgrid_operator import api
from modelgrid_operator.settings import RenderSettings

NEW_CLUSTER = "NewCluster"
RECREATE = "None"
"""KubeRay's ``RayServiceUpgradeType`` values (``rayservice_types.go``)."""


def surge_accelerators(model: api.InferenceModel, pool: api.Pool) -> int:
    """The accelerators a second cluster of the pool would take while it starts: one worker per
    replica at the pool's minimum (what KubeRay starts a new cluster with), each with
    ``tensor x pipeline`` GPUs on NVIDIA, or a whole Apple node; CPU pools take none."""
    low, _ = pool.replica_bounds
    if pool.accelerator is api.Accelerator.NVIDIA:
        return low * model.spec.engine_args.gpus_per_replica
    if pool.accelerator is api.Accelerator.APPLE:
        return low
    return 0


def upgrade_strategy(
    model: api.InferenceModel, pool: api.Pool, settings: RenderSettings
) -> dict[str, Any]:
    """The pool's ``spec.upgradeStrategy``: a second cluster only within the surge limit."""
    within = surge_accelerators(model, pool) <= settings.upgrade_surge_limit
    return {"type": NEW_CLUSTER if within else RECREATE}
