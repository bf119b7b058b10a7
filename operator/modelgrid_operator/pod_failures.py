"""Why a model's pods cannot start, read from the pods as the kubelet and the scheduler write
them. Pure: the pods, the previous failures and the clock are arguments.

KubeRay creates the pods of each pool's Ray cluster and leaves them to the kubelet, which retries
a missing image, a crashing container or a missing Secret for ever; the scheduler does the same
with a pod no node fits. Neither failure reaches the RayService, so without this the model sat in
``Scheduling`` saying only how many workers were ready. Here each failing pod becomes a
:class:`~modelgrid_operator.api.PodFailure` carrying the pod's own reason and message, so the
status says ``ImagePullBackOff: pod demo-cpu-head-x container ray-head: Back-off pulling image
...`` instead.

Pods that fail alike (same pool, container and reason) are one failure: ten workers of one pool
that cannot pull one image are one problem, reported once, and the status stays as small as the
spec. ``ErrImagePull`` and ``ImagePullBackOff`` alternate on every retry of the same pull, so they
count as the same failure too: its first-seen time and its Event survive the flip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from modelgrid_operator import api
from modelgrid_operator.clusters import cluster_names
from modelgrid_operator.render.metadata import POOL_LABEL

FAILING_WAITING_REASONS = frozenset(
    {
        api.Reason.ERR_IMAGE_PULL,
        api.Reason.IMAGE_PULL_BACK_OFF,
        api.Reason.INVALID_IMAGE_NAME,
        api.Reason.ERR_IMAGE_NEVER_PULL,
        api.Reason.CRASH_LOOP_BACK_OFF,
        api.Reason.CREATE_CONTAINER_CONFIG_ERROR,
        api.Reason.CREATE_CONTAINER_ERROR,
        api.Reason.RUN_CONTAINER_ERROR,
    }
)
"""Waiting reasons that mean the container will not start without a change; the others
(``ContainerCreating``, ``PodInitializing``) are a start under way."""

_SAME_FAILURE = {api.Reason.ERR_IMAGE_PULL.value: api.Reason.IMAGE_PULL_BACK_OFF.value}
MESSAGE_LIMIT = 1000
"""Characters kept of each message: a termination message is written by the container itself
(up to 4 KiB each), and the condition, the status and the Event must stay small."""

Key = tuple[str, str, bool, str]


def key(failure: api.PodFailure) -> Key:
    """What makes two failures the same: pool, container, init or not, and reason (the two
    reasons of one image pull are one)."""
    reason = _SAME_FAILURE.get(failure.reason, failure.reason)
    return failure.pool, failure.container, failure.init, reason


def describe(failure: api.PodFailure) -> str:
    """``<reason>: pod <pod> [init ]container <name>[ (and N other pods)]: <message>``."""
    where = f"pod {failure.pod}"
    if failure.container:
        where += f" {'init container' if failure.init else 'container'} {failure.container}"
    if failure.pods > 1:
        others = failure.pods - 1
        where += f" (and {others} other pod{'s' if others > 1 else ''})"
    said = f"{failure.reason}: {where}"
    return f"{said}: {failure.message}" if failure.message else said


def pools_of_clusters(rayservices: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Ray cluster name -> pool, from each pool's RayService (active and pending cluster): a head
    pod carries no pool label, only its cluster's name."""
    pools = {}
    for pool, rayservice in rayservices.items():
        for cluster in cluster_names(rayservice):
            if cluster:
                pools[cluster] = pool
    return pools


def _cut(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _last_exit(status: Mapping[str, Any]) -> str:
    """How a restarting container last ended (``last exit code 137 (OOMKilled)``), or ""."""
    ended = ((status.get("lastState") or {}).get("terminated")) or {}
    if "exitCode" not in ended:
        return ""
    said = f"last exit code {ended['exitCode']}"
    if ended.get("reason"):
        said += f" ({ended['reason']})"
    return f"{said}: {ended['message']}" if ended.get("message") else said


def _container_failure(status: Mapping[str, Any], *, init: bool) -> tuple[str, str] | None:
    """(reason, message) of a container that cannot start, or None."""
    state = status.get("state") or {}
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in FAILING_WAITING_REASONS:
        said = [m for m in (waiting.get("message"), _last_exit(status)) if m]
        return waiting["reason"], "; ".join(said)
    ended = state.get("terminated") or {}
    if init and ended.get("exitCode", 0) != 0:
        said = f"exited with code {ended['exitCode']}"
        if ended.get("reason"):
            said += f" ({ended['reason']})"
        if ended.get("message"):
            said += f": {ended['message']}"
        return api.Reason.INIT_CONTAINER_FAILED.value, said
    return None


def _unschedulable(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message for a pod no node fits (``0/3 nodes are available: ...``), or
    None when the pod is scheduled or still being considered."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == api.Reason.UNSCHEDULABLE
        ):
            return str(condition.get("message") or "")
    return None


def _pod_failures(pod: Mapping[str, Any]) -> Iterator[tuple[str, bool, str, str]]:
    """(container, init, reason, message) of each way the pod fails to start."""
    status = pod.get("status") or {}
    if (said := _unschedulable(pod)) is not None:
        yield "", False, api.Reason.UNSCHEDULABLE.value, said
    for field, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for container in status.get(field) or []:
            if (found := _container_failure(container, init=init)) is not None:
                yield str(container.get("name") or ""), init, *found


def observe(
    pods: Iterable[Mapping[str, Any]],
    clusters: Mapping[str, str],
    *,
    previous: Sequence[api.PodFailure],
    since: str,
) -> list[api.PodFailure]:
    """The failures the pods show now, one per :func:`key`, in a stable order.

    Args:
        pods: the model's pods (heads and workers), as listed.
        clusters: Ray cluster name -> pool (:func:`pools_of_clusters`).
        previous: the failures in the stored status: a failure seen before keeps its ``since``.
        since: now, as RFC 3339: the ``since`` of a failure not seen before.
    """
    seen: dict[Key, api.PodFailure] = {}
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name") or "")):
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue  # going away: its replacement tells
        labels = meta.get("labels") or {}
        pool = labels.get(POOL_LABEL) or clusters.get(labels.get("ray.io/cluster") or "", "")
        for container, init, reason, message in _pod_failures(pod):
            failure = api.PodFailure(
                pool=pool,
                pod=str(meta.get("name") or ""),
                container=container,
                init=init,
                reason=reason,
                message=_cut(message),
                since=since,
            )
            found = seen.get(key(failure))
            if found is None:
                seen[key(failure)] = failure
            else:
                found.pods += 1
    first_seen = {key(f): f.since for f in previous}
    return [
        f.model_copy(update={"since": first_seen.get(k, f.since)}) for k, f in sorted(seen.items())
    ]


def new_failures(
    previous: Sequence[api.PodFailure], current: Sequence[api.PodFailure]
) -> list[api.PodFailure]:
    """The failures of ``current`` that ``previous`` (the stored status) did not have: those get
    an Event, once, however often the model is reconciled while they last."""
    before = {key(f) for f in previous}
    return [f for f in current if key(f) not in before]
