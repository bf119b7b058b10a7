"""The ``Progressing`` condition: is a new Ray cluster of a pool late? Pure: clock passed in.

While a changed cluster starts (KubeRay's ``NewCluster`` upgrade, or the first cluster of a
pool), KubeRay waits for it without a deadline: the RayService keeps its pending cluster until
every application on it runs, and the cluster that serves keeps serving meanwhile. A cluster that
cannot be placed (no GPU free for the second copy, a node selector nothing matches) would wait
forever in silence. So a pending cluster older than ``upgrade_deadline_seconds`` turns
``Progressing`` False with reason ``ProgressDeadlineExceeded`` and says what it lacks (ready
workers, the application's state) and what serves meanwhile; the operator changes nothing, as a
Deployment's controller changes nothing when its progress deadline passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from modelgrid_operator import api
from modelgrid_operator.clusters import cluster_names
from modelgrid_operator.render.metadata import POOL_LABEL
from modelgrid_operator.render.rayservice import application_name
from modelgrid_operator.status import pod_ready


def _ready_workers(pods: Sequence[Mapping[str, Any]], pool: str, cluster: str) -> int:
    """Ready worker pods of ``pool`` in the Ray cluster named ``cluster``."""
    return sum(
        1
        for p in pods
        if (labels := (p.get("metadata") or {}).get("labels") or {}).get("ray.io/cluster")
        == cluster
        and labels.get(POOL_LABEL) == pool
        and pod_ready(p)
    )


def _late(
    model: api.InferenceModel,
    pool: api.Pool,
    rayservice: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    deadline_seconds: int,
) -> str:
    """What a pool's late pending cluster lacks, and what serves meanwhile."""
    active, pending = cluster_names(rayservice)
    status = (rayservice.get("status") or {}).get("pendingServiceStatus") or {}
    app = (status.get("applicationStatuses") or {}).get(application_name(model, pool)) or {}
    state = app.get("status") or "not deployed"
    detail = f": {app['message']}" if app.get("message") else ""
    low, _ = pool.replica_bounds
    serving = f"cluster {active} keeps serving" if active else "no cluster serves the pool"
    return (
        f"pool {pool.name}: Ray cluster {pending} is not serving after {deadline_seconds}s: "
        f"{_ready_workers(pods, pool.name, pending)}/{low} workers ready, application "
        f"{state}{detail}; {serving}"
    )


def judge_progress(
    model: api.InferenceModel,
    rayservices: Mapping[str, Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    pending_since: Mapping[str, datetime],
    *,
    deadline_seconds: int,
    now: datetime,
) -> tuple[bool, api.Reason, str]:
    """The ``Progressing`` condition: whether it holds, why, and the message.

    Args:
        model: the validated model.
        rayservices: pool name -> its live RayService.
        pods: the model's pods.
        pending_since: pool name -> when its pending RayCluster was created.
        deadline_seconds: how long a pending cluster may take.
        now: the current time.
    """
    late, starting = [], []
    for pool in model.spec.pools:
        rayservice = rayservices.get(pool.name)
        pending = cluster_names(rayservice)[1] if rayservice else ""
        if not pending or rayservice is None:
            continue
        since = pending_since.get(pool.name)
        if since is not None and (now - since).total_seconds() > deadline_seconds:
            late.append(_late(model, pool, rayservice, pods, deadline_seconds))
        else:
            starting.append(f"pool {pool.name}: Ray cluster {pending} is starting")
    if late:
        return False, api.Reason.PROGRESS_DEADLINE_EXCEEDED, "; ".join(late)
    if starting:
        return True, api.Reason.NEW_CLUSTER_STARTING, "; ".join(starting)
    return True, api.Reason.UP_TO_DATE, "every pool runs the Ray cluster of its current spec"
