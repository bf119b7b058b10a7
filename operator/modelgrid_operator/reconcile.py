"""One reconcile of one InferenceModel: validate, render, apply if different, observe, report.

Both the change handlers (create, update, resume) and the periodic refresh call
:func:`reconcile`, so there is one path that writes children and status. It writes only what
differs: a second reconcile of an unchanged world makes read calls only. It writes only
RayServices the model controls (its owner reference): see :mod:`.pool_services`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from modelgrid_serving.claims import Claim, claim_of, lost_names
from pydantic import ValidationError

from modelgrid_operator import api
from modelgrid_operator.admission import Admission, ModelFacts, admit
from modelgrid_operator.handover import stand_ins
from modelgrid_operator.k8s import Client, KubeRayMissing
from modelgrid_operator.model_info import read_model_facts
from modelgrid_operator.network import apply_network_policy
from modelgrid_operator.pod_failures import new_failures
from modelgrid_operator.policy import check_policy
from modelgrid_operator.pool_services import apply_pools
from modelgrid_operator.progress import judge_progress
from modelgrid_operator.render import (
    Owner,
    owner_of,
    pool_endpoint,
    render_network_policy,
)
from modelgrid_operator.render.rayservice import serve_service_url
from modelgrid_operator.settings import RenderSettings
from modelgrid_operator.status import Observation, compute_status, invalid_status
from modelgrid_operator.validation import InvalidModel, parse_model


class ModelGone(LookupError):
    """The model is gone or being deleted: reconciling now could recreate what delete removed."""


@dataclass(frozen=True)
class Outcome:
    """What a reconcile did and found.

    Attributes:
        status: the status to store, as the wire dict, or None when it is unchanged.
        phase: the phase after this reconcile.
        previous_phase: the phase before it (None on the first reconcile).
        action: what happened to the children: "created" (a RayService), "patched" (any
            other write), or "" for nothing.
        message: the Ready condition's message, for events and logs.
        new_pod_failures: pod failures this reconcile saw first (each gets one Event).
    """

    status: dict[str, Any] | None
    phase: api.Phase
    previous_phase: api.Phase | None
    action: str
    message: str
    new_pod_failures: tuple[api.PodFailure, ...] = ()


def _stored_status(body: dict[str, Any]) -> api.InferenceModelStatus | None:
    raw = {k: v for k, v in (body.get("status") or {}).items() if k in _STATUS_KEYS}
    if not raw:
        return None
    try:
        return api.InferenceModelStatus.model_validate(raw)
    except ValidationError:
        return None  # written by someone else or an older operator: recompute from scratch


_STATUS_KEYS = {f.alias or name for name, f in api.InferenceModelStatus.model_fields.items()}


def _created(body: dict[str, Any]) -> datetime | None:
    stamp = body.get("metadata", {}).get("creationTimestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def _wire(status: api.InferenceModelStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, mode="json")


def _outcome(
    previous: api.InferenceModelStatus | None, status: api.InferenceModelStatus, action: str
) -> Outcome:
    new = _wire(status)
    unchanged = previous is not None and _wire(previous) == new
    ready = next((c for c in status.conditions if c.type == api.ConditionType.READY), None)
    return Outcome(
        status=None if unchanged else new,
        phase=status.phase,
        previous_phase=previous.phase if previous else None,
        action=action,
        message=ready.message if ready else "",
        new_pod_failures=tuple(
            new_failures(previous.pod_failures if previous else [], status.pod_failures)
        ),
    )


FactsReader = Callable[[api.ModelSource], ModelFacts | None]
"""Reads what a model's files say about its size (see :mod:`modelgrid_operator.model_info`)."""


def read_local_facts(source: api.ModelSource) -> ModelFacts | None:
    """Facts from a model directory the operator can see; no network."""
    return read_model_facts(source, hub=False)


async def _apply(
    model: api.InferenceModel,
    owner: Owner,
    admissions: tuple[Admission, ...],
    *,
    client: Client,
    settings: RenderSettings,
    now: datetime,
    previous: api.InferenceModelStatus | None,
) -> tuple[Observation, str]:
    """Apply the model's RayServices (:func:`.pool_services.apply_pools`) and observe them:
    their pods, and whether a new Ray cluster of a pool is late (:mod:`.progress`)."""
    applied = await apply_pools(
        model, owner, admissions, client=client, settings=settings, known=_known(previous)
    )
    lives = applied.rayservices
    pods = await client.list_model_pods(model.namespace, model.name) if lives else []
    observation = Observation(
        lives,
        pods=pods,
        admissions=applied.admissions,
        held=applied.held,
        retiring=applied.retiring,
        apply_error=(api.Reason.CONFLICT, applied.conflict) if applied.conflict else None,
        progressing=judge_progress(
            model,
            lives,
            pods,
            applied.pending_since,
            deadline_seconds=settings.upgrade_deadline_seconds,
            now=now,
        )
        if lives
        else None,
    )
    return observation, applied.action


def _known(previous: api.InferenceModelStatus | None) -> set[str]:
    """The RayServices the model's stored status names: its pools', the one of an operator
    before one per pool (``rayService``), and those waiting to be retired."""
    if previous is None:
        return set()
    names = {p.ray_service for p in previous.pools} | {previous.ray_service}
    return {n for n in names if n} | set(previous.retiring_ray_services)


async def reconcile(
    body: dict[str, Any],
    *,
    client: Client,
    settings: RenderSettings,
    now: datetime,
    read_facts: FactsReader = read_local_facts,
    claims: Mapping[str, Iterable[Claim]] | None = None,
) -> Outcome:
    """Bring the model's RayServices in line with its spec and compute its status.

    Args:
        body: the InferenceModel from the event being handled (only its name is trusted).
        client: API access.
        settings: render settings.
        now: the current time (for status transitions and time-to-ready).
        read_facts: what the memory admission knows of the model's size beyond its spec.
        claims: served name -> the claims of the InferenceModels that declare it (the
            operator's index of every model it watches), for the NamesClaimed condition.
    """
    body = await _read_stored(body, client)
    previous = _stored_status(body)
    generation = body["metadata"].get("generation")
    try:
        model = _parse_checked(body, settings)
    except InvalidModel as exc:
        status = invalid_status(previous, str(exc), generation=generation, now=now)
        return _outcome(previous, status, "")

    mine = claim_of(body)
    lost = lost_names(mine, (c for name in mine.names for c in (claims or {}).get(name, ())))
    facts = await asyncio.to_thread(read_facts, model.spec.model)
    admissions = admit(model, facts, await client.list_nodes(), settings)
    owner = owner_of(body)
    action, writing = "", "the NetworkPolicy"
    try:
        await apply_network_policy(
            client, render_network_policy(model, settings=settings, owner=owner)
        )
        writing = "the RayServices"
        observation, action = await _apply(
            model, owner, admissions, client=client, settings=settings, now=now, previous=previous
        )
    except (KubeRayMissing, ApiException) as exc:
        observation = _write_refused(exc, f"{writing} of {model.name}", admissions)
    observation = replace(observation, lost_names=lost)
    status = compute_status(
        model,
        observation,
        previous=previous,
        generation=generation,
        endpoints=_deployed_endpoints(model, observation, settings),
        now=now,
        created=_created(body),
        pod_failure_deadline_seconds=settings.pod_failure_deadline_seconds,
    )
    return _outcome(previous, status, action)


async def _read_stored(body: dict[str, Any], client: Client) -> dict[str, Any]:
    """The model as stored now, not as the event carried it.

    The body may come from an old watch event (the refresh keeps the one it indexed): working
    from the stored object means a stale event can never move the spec or the status backwards.

    Raises:
        ModelGone: the model is deleted, or being deleted.
    """
    current = await client.get_model(
        body["metadata"].get("namespace") or "default", body["metadata"]["name"]
    )
    if current is None or current["metadata"].get("deletionTimestamp"):
        raise ModelGone(body["metadata"]["name"])
    return current


def _parse_checked(body: dict[str, Any], settings: RenderSettings) -> api.InferenceModel:
    """The typed model, checked against the spec's rules and the operator's policy: the same
    checks the CLI runs, for an API server that lacks the CRD's CEL rules or a policy it cannot
    express.

    Raises:
        InvalidModel: naming the field at fault.
    """
    meta = body["metadata"]
    model = parse_model(
        {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
            "spec": body.get("spec"),
        }
    )
    check_policy(model, settings)
    return model


def _write_refused(
    exc: KubeRayMissing | ApiException, what: str, admissions: tuple[Admission, ...]
) -> Observation:
    """A refusal to write a child (KubeRay missing, the API server or a webhook saying no) is
    not an error of the operator but something to observe: the status names the object and
    the reason, and the next reconcile tries again."""
    if isinstance(exc, KubeRayMissing):
        error = (api.Reason.KUBERAY_MISSING, str(exc))
    else:
        error = (api.Reason.APPLY_FAILED, f"writing {what} failed: {exc.status} {exc.reason}")
    return Observation({}, apply_error=error, admissions=admissions)


def _deployed_endpoints(
    model: api.InferenceModel, observation: Observation, settings: RenderSettings
) -> dict[str, str]:
    """The endpoint of each pool that runs (admitted now, or kept from before): a refused pool
    has none, so the gateway sends it nothing. A pool that a retiring RayService still serves
    in place of its own has that one's (:mod:`.handover`)."""
    deployed = {a.pool for a in observation.admissions if a.admitted or a.kept}
    standing = stand_ins(model, observation.rayservices, observation.retiring)
    return {
        p.name: serve_service_url(model.namespace, standing[p.name].name, settings)
        + standing[p.name].route
        if p.name in standing
        else pool_endpoint(model, p, settings)
        for p in model.spec.pools
        if p.name in deployed
    }
