"""Compute an InferenceModel's status from what the operator observed. Pure: the clock is an
argument, the previous status is an argument, nothing is read or written here.

Phases follow the model's RayServices (one per pool):

======== ==========================================================================
Pending  no RayService yet (or KubeRay is missing)
Scheduling  worker pods are not all ready yet
Loading  pods are up; the Serve application is deploying (weights load, warm-up)
Ready    the application runs and every pool has its minimum of ready replicas
Degraded was Ready, now a pool lacks replicas or an application is unhealthy; or some pools
         serve while another failed to deploy or was refused by the memory admission
Failed   the spec is invalid, every application failed to deploy, or every pool was refused;
         or a pod failed to start for longer than the pod failure deadline and no pool serves
======== ==========================================================================

A pod that cannot start (:mod:`.pod_failures`) shows in the ``PodsHealthy`` condition at once.
While the model is on its way (Scheduling, Loading) the Ready condition takes the pod's reason
and message too; past ``pod_failure_deadline_seconds`` from when it was first seen, the phase
turns Failed, or Degraded while another pool serves. The deadline is there because some of
these heal by themselves: a pod is Unschedulable while a cluster autoscaler adds the node it
waits for, and an image pull may fail on a registry's bad minute.

``timeToReady`` adds the seconds of each phase until the first Ready, the cold-start budget
that users otherwise reconstruct from logs. Times and transition stamps only change when the
phase or a condition changes, so observing the same world twice computes the same status and
the operator writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelgrid_serving.claims import LostName

from modelgrid_operator import api, pod_failures
from modelgrid_operator.admission import Admission
from modelgrid_operator.clusters import cluster_names
from modelgrid_operator.handover import stand_ins
from modelgrid_operator.render.rayservice import application_name
from modelgrid_operator.settings import RenderSettings

_TO_BUCKET = {
    api.Phase.PENDING: "pending",
    api.Phase.SCHEDULING: "scheduling",
    api.Phase.LOADING: "loading",
}


def format_time(moment: datetime) -> str:
    """RFC 3339 with seconds, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


Judgement = tuple[bool, api.Reason, str]
"""A condition's verdict: whether it holds, why, and the message a user reads."""


@dataclass(frozen=True)
class Observation:
    """What the operator saw of a model's children in one look.

    Attributes:
        rayservices: pool name -> the pool's RayService as read (a pool without one is absent).
        pods: the pods labelled with the model's name: heads and workers of its Ray clusters.
        apply_error: why the child could not be written, when it could not: (reason, message).
        admissions: the memory admission decision of each pool (empty: every pool admitted,
            nothing said).
        held: why the RayService was left as it runs instead of being patched to the spec
            (a pool it runs would not fit any node now); empty when it was not held.
        lost_names: the names another namespace owns (:mod:`modelgrid_serving.claims`).
        progressing: the ``Progressing`` condition (:mod:`modelgrid_operator.progress`), or None
            when no RayService was looked at.
        retiring: name -> each RayService of the model that no pool renders, waiting to be
            deleted; one may serve a pool whose own does not yet (:mod:`.handover`).
    """

    rayservices: Mapping[str, dict[str, Any]]
    pods: list[dict[str, Any]] = field(default_factory=list)
    apply_error: tuple[api.Reason, str] | None = None
    admissions: tuple[Admission, ...] = ()
    held: str = ""
    lost_names: tuple[LostName, ...] = ()
    progressing: Judgement | None = None
    retiring: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def refused(self) -> list[Admission]:
        """The pools the memory admission refused and that do not run (kept pools still do)."""
        return [a for a in self.admissions if not a.admitted and not a.kept]


@dataclass(frozen=True)
class Verdict:
    """A phase and why."""

    phase: api.Phase
    reason: api.Reason
    message: str


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """A pod counts as ready while its Ready condition is True and it is not terminating."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def pool_statuses(
    model: api.InferenceModel,
    observation: Observation,
    endpoints: Mapping[str, str] | None = None,
) -> list[api.PoolStatus]:
    """Ready and desired worker pods per pool, counting only the pods of the cluster that
    serves the pool (its RayService's active cluster, else the pending one), and the endpoint
    and RayService of each pool that has one.

    A pool whose Serve application failed to deploy has no replica ready to serve, whatever its
    pods say: the gateway routes by these counts, and Serve's proxy answers 404 for the route of
    a failed application. A pool that an earlier operator's RayService still serves in place of
    its own is counted there, and named by it (:func:`_followed`).
    """
    spec = model.spec
    endpoints = endpoints or {}
    apps = _applications(model, observation)
    followed = _followed(model, observation)
    result = []
    for pool in spec.pools:
        rayservice = followed[pool.name][0]
        active, pending = cluster_names(rayservice) if rayservice else ("", "")
        cluster = active or pending or None
        pods = [
            p
            for p in observation.pods
            if p.get("metadata", {}).get("labels", {}).get("modelgrid.io/pool") == pool.name
            and (
                cluster is None
                or p["metadata"].get("labels", {}).get("ray.io/cluster") in (None, cluster)
            )
        ]
        low, _ = pool.replica_bounds
        refused = any(a.pool == pool.name for a in observation.refused)
        result.append(
            api.PoolStatus(
                name=pool.name,
                accelerator=pool.accelerator,
                engine=spec.engine_for(pool),
                ready_replicas=0
                if apps[pool.name].get("status") == "DEPLOY_FAILED"
                else sum(pod_ready(p) for p in pods),
                desired_replicas=0 if refused else max(low, len(pods)),
                endpoint=endpoints.get(pool.name) if rayservice is not None else None,
                ray_service=rayservice["metadata"]["name"] if rayservice is not None else None,
            )
        )
    return result


def _followed(
    model: api.InferenceModel, observation: Observation
) -> dict[str, tuple[Mapping[str, Any] | None, str]]:
    """Pool name -> the RayService the status follows for the pool, and the pool's application
    in it: the pool's own, or, while that does not serve, a retiring one that does
    (:mod:`.handover`), so the gateway keeps routing to what serves."""
    standing = stand_ins(model, observation.rayservices, observation.retiring)
    return {
        pool.name: (standing[pool.name].rayservice, standing[pool.name].application)
        if pool.name in standing
        else (observation.rayservices.get(pool.name), application_name(model, pool))
        for pool in model.spec.pools
    }


def _applications(model: api.InferenceModel, observation: Observation) -> dict[str, dict[str, Any]]:
    """Each pool's Serve application status in the RayService followed for it
    (:func:`_followed`; the active cluster's, else the pending one's); empty for a pool without
    a RayService."""
    apps = {}
    for pool, (rayservice, name) in _followed(model, observation).items():
        status = (rayservice or {}).get("status") or {}
        active = (status.get("activeServiceStatus") or {}).get("applicationStatuses") or {}
        pending = (status.get("pendingServiceStatus") or {}).get("applicationStatuses") or {}
        apps[pool] = active.get(name) or pending.get(name) or {}
    return apps


def judge(
    model: api.InferenceModel,
    observation: Observation,
    pools: list[api.PoolStatus],
    *,
    was_ready: bool,
) -> Verdict:
    """The phase the observation shows.

    Pools refused by the memory admission make the model Failed when none is left, else keep
    Ready false with reason InsufficientMemory (phase Degraded while the other pools serve).
    A RayService of the model's name that is not the model's (Conflict), and a model that holds
    none of its names (NameConflict: the gateway routes nothing to it), are Failed: only the
    user can resolve them.
    """
    if observation.apply_error is not None:
        reason, message = observation.apply_error
        phase = api.Phase.FAILED if reason is api.Reason.CONFLICT else api.Phase.PENDING
        return Verdict(phase, reason, message)
    if {n.name for n in observation.lost_names} >= set(model.served_names):
        return Verdict(api.Phase.FAILED, api.Reason.NAME_CONFLICT, _names(observation)[2])
    refused = observation.refused
    if refused and len(refused) == len(model.spec.pools):
        return Verdict(
            api.Phase.FAILED,
            api.Reason.INSUFFICIENT_MEMORY,
            "; ".join(a.message for a in refused),
        )
    if not observation.rayservices:
        return Verdict(
            api.Phase.PENDING,
            api.Reason.WAITING_FOR_RAY_SERVICE,
            "waiting for the RayServices to be created",
        )
    names = {a.pool for a in refused}
    verdict = _judge_serving(
        model, observation, [p for p in pools if p.name not in names], was_ready
    )
    if not refused or verdict.phase is api.Phase.FAILED:
        return verdict
    phase = api.Phase.DEGRADED if verdict.phase is api.Phase.READY else verdict.phase
    return Verdict(
        phase,
        api.Reason.INSUFFICIENT_MEMORY,
        "; ".join([*(a.message for a in refused), f"other pools: {verdict.message}"]),
    )


def _judge_serving(
    model: api.InferenceModel,
    observation: Observation,
    pools: list[api.PoolStatus],
    was_ready: bool,
) -> Verdict:
    """The phase of the rendered pools: each is one Serve application in its own RayService."""
    several = len(model.spec.pools) > 1
    all_apps = _applications(model, observation)
    apps = {p.name: all_apps[p.name] for p in pools}

    def said(name: str, default: str) -> str:
        message = apps[name].get("message") or default
        return f"pool {name}: {message}" if several else message

    failed = [n for n, app in apps.items() if app.get("status") == "DEPLOY_FAILED"]
    if failed and len(failed) == len(apps):
        return Verdict(
            api.Phase.FAILED,
            api.Reason.DEPLOY_FAILED,
            "; ".join(said(n, "the Serve application failed to deploy") for n in failed),
        )
    minimum = {p.name: p.replica_bounds[0] for p in model.spec.pools}
    short = [p for p in pools if p.ready_replicas < minimum[p.name]]
    waiting = [n for n, app in apps.items() if app.get("status") != "RUNNING"]
    if not waiting and not short:
        return Verdict(
            api.Phase.READY, api.Reason.SERVING, f"serving {', '.join(model.served_names)}"
        )
    missing = ", ".join(f"{p.name} {p.ready_replicas}/{p.desired_replicas}" for p in short)
    not_running = "; ".join(
        said(n, f"the Serve application is {apps[n].get('status') or 'not running'}")
        for n in waiting
    )
    if was_ready or failed:  # failed is partial here: the other pools still serve
        if short and not failed:  # (a failed pool is short too: its replicas do not count)
            return Verdict(
                api.Phase.DEGRADED,
                api.Reason.REPLICAS_MISSING,
                f"pools below their minimum of ready replicas: {missing}",
            )
        return Verdict(
            api.Phase.DEGRADED,
            api.Reason.DEPLOY_FAILED if failed else api.Reason.REPLICAS_MISSING,
            not_running,
        )
    if short:
        return Verdict(
            api.Phase.SCHEDULING, api.Reason.SCHEDULING_PODS, f"waiting for worker pods: {missing}"
        )
    loading = [n for n in waiting if apps[n].get("message")]
    return Verdict(
        api.Phase.LOADING,
        api.Reason.LOADING_MODEL,
        "; ".join(said(n, "") for n in loading)
        or "loading the model and starting the Serve application",
    )


def _serving_pools(
    model: api.InferenceModel, observation: Observation, pools: list[api.PoolStatus]
) -> list[str]:
    """The pools whose application runs with their minimum of ready replicas (at least one)."""
    apps = _applications(model, observation)
    minimum = {p.name: max(1, p.replica_bounds[0]) for p in model.spec.pools}
    return [
        p.name
        for p in pools
        if apps[p.name].get("status") == "RUNNING" and p.ready_replicas >= minimum[p.name]
    ]


def with_pod_failures(
    verdict: Verdict,
    failures: list[api.PodFailure],
    serving: list[str],
    *,
    deadline_seconds: int,
    now: datetime,
) -> Verdict:
    """The verdict once failing pods are taken into account.

    Only a model on its way (Scheduling, Loading) changes: there the failing pods are why it
    does not get further, so the Ready condition says so with the pod's reason. Past the
    deadline, counted from the oldest failure's first sighting, the phase is Failed, or
    Degraded while ``serving`` names a pool. A Ready model with a failing pod (an autoscaled
    extra worker no node fits, a new cluster beside the serving one) stays Ready: the
    ``PodsHealthy`` condition says what fails.
    """
    if not failures or verdict.phase not in (api.Phase.SCHEDULING, api.Phase.LOADING):
        return verdict
    message = "; ".join(pod_failures.describe(f) for f in failures)
    reason = api.Reason(failures[0].reason)
    oldest = min(parse_time(f.since) for f in failures)
    if (now - oldest).total_seconds() < deadline_seconds:
        return Verdict(verdict.phase, reason, message)
    late = f"pods failing for over {deadline_seconds}s: {message}"
    if serving:
        return Verdict(
            api.Phase.DEGRADED, reason, f"{late}; pools still serving: {', '.join(serving)}"
        )
    return Verdict(api.Phase.FAILED, reason, late)


def _pods_healthy(failures: list[api.PodFailure]) -> Judgement:
    """The PodsHealthy condition: False with the first failure's reason, naming every one."""
    if not failures:
        return True, api.Reason.NO_FAILING_PODS, "no pod of the model is failing to start"
    message = "; ".join(pod_failures.describe(f) for f in failures)
    return False, api.Reason(failures[0].reason), message


def _admitted(observation: Observation) -> Judgement:
    """The MemoryAdmitted condition: False when a pool is refused (kept pools included: they
    run, but would not be placed now), else why pools were let in."""
    if not observation.admissions:
        return True, api.Reason.NO_ESTIMATE, "memory admission not run"
    refused = [a for a in observation.admissions if not a.admitted]
    if refused:
        return False, api.Reason.INSUFFICIENT_MEMORY, "; ".join(a.message for a in refused)
    reasons = {a.reason for a in observation.admissions}
    reason = next(
        (r for r in (api.Reason.NO_ESTIMATE, api.Reason.NO_CAPACITY) if r in reasons),
        api.Reason.FITS,
    )
    return True, reason, "; ".join(a.message for a in observation.admissions)


def _judgements(
    verdict: Verdict, observation: Observation, failures: list[api.PodFailure]
) -> tuple[tuple[api.ConditionType, Judgement], ...]:
    """Each condition of a valid model, judged from this observation, in the order they show."""
    return (
        (
            api.ConditionType.READY,
            (verdict.phase is api.Phase.READY, verdict.reason, verdict.message),
        ),
        (api.ConditionType.SPEC_VALID, (True, api.Reason.VALID, "spec is valid")),
        (api.ConditionType.RAY_SERVICE_APPLIED, _applied(observation)),
        (api.ConditionType.MEMORY_ADMITTED, _admitted(observation)),
        (api.ConditionType.NAMES_CLAIMED, _names(observation)),
        *(
            ((api.ConditionType.PROGRESSING, observation.progressing),)
            if observation.progressing is not None
            else ()
        ),
        (api.ConditionType.PODS_HEALTHY, _pods_healthy(failures)),
    )


def _conditions(
    previous: list[api.Condition],
    judged: Iterable[tuple[api.ConditionType, Judgement]],
    *,
    generation: int | None,
    now: datetime,
) -> list[api.Condition]:
    """The conditions to write, one per judgement; see :func:`_condition`."""
    return [
        _condition(previous, kind, *judgement, generation=generation, now=now)
        for kind, judgement in judged
    ]


def _condition(
    previous: list[api.Condition],
    kind: api.ConditionType,
    ok: bool,
    reason: api.Reason,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> api.Condition:
    """One condition; its ``lastTransitionTime`` moves only when its status flips, so a user
    reads how long it has held, not when the operator last looked."""
    status = "True" if ok else "False"
    old = next((c for c in previous if c.type == kind.value), None)
    since = (
        old.last_transition_time if old is not None and old.status == status else format_time(now)
    )
    return api.Condition(
        type=kind.value,
        status=status,
        reason=reason.value,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def _applied(observation: Observation) -> Judgement:
    """Whether the child matches the spec, and why not."""
    if observation.apply_error is not None:
        return False, *observation.apply_error
    if not observation.rayservices:
        return False, api.Reason.WAITING_FOR_RAY_SERVICE, "no RayService of the model exists yet"
    if observation.held:
        return False, api.Reason.KEPT_RUNNING, observation.held
    return True, api.Reason.APPLIED, "RayService matches the spec"


SHARE_HINT = (
    "to serve it too, the owner's model and this one list each other's namespace in "
    "spec.shareNamesWith; or choose another name"
)


def _names(observation: Observation) -> Judgement:
    """The NamesClaimed condition: does the model hold every name it declares?"""
    if not observation.lost_names:
        return True, api.Reason.NAMES_HELD, "no other namespace claimed these names first"
    lost = "; ".join(n.describe() for n in observation.lost_names)
    message = f"{lost}: the gateway does not route them to this model; {SHARE_HINT}"
    return False, api.Reason.NAME_CONFLICT, message


def _advance_times(
    previous: api.InferenceModelStatus, phase: api.Phase, since: datetime, now: datetime
) -> api.PhaseTimes:
    times = previous.time_to_ready
    if times.total is not None or phase == previous.phase:
        return times
    bucket = _TO_BUCKET.get(previous.phase)
    updated = times.model_copy()
    if bucket is not None:
        elapsed = round(max(0.0, (now - since).total_seconds()), 3)
        setattr(updated, bucket, round(getattr(updated, bucket) + elapsed, 3))
    if phase is api.Phase.READY:
        updated.total = round(updated.pending + updated.scheduling + updated.loading, 3)
    return updated


def compute_status(
    model: api.InferenceModel,
    observation: Observation,
    *,
    previous: api.InferenceModelStatus | None,
    generation: int | None,
    endpoints: Mapping[str, str],
    now: datetime,
    created: datetime | None = None,
    pod_failure_deadline_seconds: int = RenderSettings().pod_failure_deadline_seconds,
) -> api.InferenceModelStatus:
    """The status to write after one observation.

    Args:
        model: the validated model.
        observation: what was seen of its children.
        previous: the status currently stored, or None on the first reconcile.
        generation: ``metadata.generation`` of the model.
        endpoints: base URL of each rendered pool's application, in spec order; the first,
            with ``/v1``, is the model's endpoint.
        now: the current time.
        created: when the model was created (the start of Pending); defaults to ``now``.
        pod_failure_deadline_seconds: how long a pod may fail to start before the phase says
            so (:func:`with_pod_failures`).
    """
    prev = previous or api.InferenceModelStatus(phase_since=format_time(created or now))
    since = parse_time(prev.phase_since) if prev.phase_since else (created or now)
    pools = pool_statuses(model, observation, endpoints)
    failures = pod_failures.observe(
        observation.pods,
        pod_failures.pools_of_clusters(observation.rayservices),
        previous=prev.pod_failures,
        since=format_time(now),
    )
    verdict = _verdict(
        model,
        observation,
        pools,
        prev,
        failures,
        deadline_seconds=pod_failure_deadline_seconds,
        now=now,
    )
    ready = sum(p.ready_replicas for p in pools)
    desired = sum(p.desired_replicas for p in pools)
    first = next(iter(endpoints.values()), None)
    return api.InferenceModelStatus(
        phase=verdict.phase,
        phase_since=format_time(now) if verdict.phase != prev.phase else prev.phase_since,
        conditions=_conditions(
            prev.conditions,
            _judgements(verdict, observation, failures),
            generation=generation,
            now=now,
        ),
        observed_generation=generation,
        endpoint=f"{first}/v1" if first and observation.rayservices else None,
        served_model_names=model.served_names,
        ready_replicas=ready,
        replicas=f"{ready}/{desired}",
        pools=pools,
        time_to_ready=_advance_times(prev, verdict.phase, since, now),
        ray_service=next((p.ray_service for p in pools if p.ray_service), None),
        retiring_ray_services=list(observation.retiring),
        pod_failures=failures,
    )


def _verdict(
    model: api.InferenceModel,
    observation: Observation,
    pools: list[api.PoolStatus],
    prev: api.InferenceModelStatus,
    failures: list[api.PodFailure],
    *,
    deadline_seconds: int,
    now: datetime,
) -> Verdict:
    """The phase and why: what the children say (:func:`judge`; a model that was Ready once and
    falls short is Degraded, not loading again), then what pods that cannot start say
    (:func:`with_pod_failures`)."""
    return with_pod_failures(
        judge(model, observation, pools, was_ready=prev.time_to_ready.total is not None),
        failures,
        _serving_pools(model, observation, pools),
        deadline_seconds=deadline_seconds,
        now=now,
    )


def invalid_status(
    previous: api.InferenceModelStatus | None,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> api.InferenceModelStatus:
    """Status of a model whose spec the operator refused: Failed with an InvalidSpec condition."""
    prev = previous or api.InferenceModelStatus()
    refused = (False, api.Reason.INVALID_SPEC, message)
    conditions = _conditions(
        prev.conditions,
        ((api.ConditionType.READY, refused), (api.ConditionType.SPEC_VALID, refused)),
        generation=generation,
        now=now,
    )
    return prev.model_copy(
        update={
            "phase": api.Phase.FAILED,
            "phase_since": format_time(now)
            if prev.phase is not api.Phase.FAILED
            else prev.phase_since,
            "conditions": conditions,
            "observed_generation": generation,
        }
    )
