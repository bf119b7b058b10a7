"""Apply a model's RayServices, one per pool: create, correct, keep each pool's running Ray
cluster in line where KubeRay does not, and retire the RayServices no pool renders any more.

The RayServices to retire are known from the model's stored status (``pools[].rayService`` of
pools that left the spec, the ``rayService`` of an operator before one per pool, and
``retiringRayServices`` while they wait), so a reconcile reads each pool's RayService by name
and lists nothing: a label-selected LIST per model and refresh would cost the API server a scan
of the namespace's RayServices each time.

One RayService per pool, because KubeRay treats a RayService as one unit: it is ready only when
every application in it runs (``getAndCheckServeStatus``), its serve Service is switched only
then, an application that failed to deploy is retried only when the config text changes, and a
change of any worker group replaces the whole cluster. In a RayService of its own, a pool that
fails, waits for capacity or upgrades leaves the others serving (docs/operator.md).

Only a RayService whose controller is the model (its uid) is written or deleted, and only a
RayCluster whose controller is that RayService (:mod:`.clusters`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelgrid_operator import api
from modelgrid_operator.admission import Admission
from modelgrid_operator.clusters import read_clusters
from modelgrid_operator.drift import drift_patch
from modelgrid_operator.k8s import Client
from modelgrid_operator.ownership import describe_owner, is_owned_by
from modelgrid_operator.render import Owner, rayservice_name, render_rayservice
from modelgrid_operator.render.rayservice import application_name
from modelgrid_operator.render.upgrade import RECREATE, upgrade_strategy
from modelgrid_operator.scaling import apply_bounds
from modelgrid_operator.settings import RenderSettings
from modelgrid_operator.status import parse_time
from modelgrid_operator.updates import replace_outdated


@dataclass
class Applied:
    """What applying a model's RayServices found and did.

    Attributes:
        rayservices: pool name -> its RayService as it is now.
        admissions: the admission of each pool, ``keep()``-ed for pools that run.
        held: why a pool's RayService was left as it runs (one message per pool), or "".
        conflict: the message for RayServices of our names that are not the model's, or "".
        retiring: the model's RayServices that no pool renders and that wait to be deleted.
        pending_since: pool name -> when its pending (new) Ray cluster was created.
        writes: what was written, e.g. ``created RayService x``, in order.
    """

    rayservices: dict[str, dict[str, Any]] = field(default_factory=dict)
    admissions: tuple[Admission, ...] = ()
    held: str = ""
    conflict: str = ""
    retiring: tuple[str, ...] = ()
    pending_since: dict[str, datetime] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        """ "created" when a RayService was created, "patched" for any other write, else ""."""
        if any(w.startswith("created") for w in self.writes):
            return "created"
        return "patched" if self.writes else ""


def _conflict_message(model: api.InferenceModel, foreign: Iterable[dict[str, Any]]) -> str:
    return "; ".join(
        f"RayService {model.namespace}/{rs['metadata']['name']} exists and is not this "
        f"InferenceModel's: {describe_owner(rs)}; the operator neither changes nor deletes it. "
        "Rename the InferenceModel, or remove that RayService"
        for rs in foreign
    )


def _serves(model: api.InferenceModel, pool: api.Pool, rayservice: Mapping[str, Any]) -> bool:
    """The pool's application runs on the RayService's active cluster."""
    active = ((rayservice.get("status") or {}).get("activeServiceStatus")) or {}
    app = (active.get("applicationStatuses") or {}).get(application_name(model, pool)) or {}
    return app.get("status") == "RUNNING"


def _created_at(obj: Mapping[str, Any]) -> datetime | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return parse_time(stamp) if stamp else None


async def apply_pools(
    model: api.InferenceModel,
    owner: Owner,
    admissions: tuple[Admission, ...],
    *,
    client: Client,
    settings: RenderSettings,
    known: Iterable[str] = (),
) -> Applied:
    """Create or correct each deployable pool's RayService and its running cluster; retire the
    RayServices of the model that no pool renders once every deployed pool serves.

    Args:
        model: the validated model.
        owner: its name and uid.
        admissions: the memory admission of each pool.
        client: API access.
        settings: render settings.
        known: names of RayServices the model had, from its stored status: those no pool
            renders now are retired (:func:`_retire`).

    A pool that runs is kept even when the memory admission would refuse it now
    (:meth:`Admission.keep`): while such a pool would change, its RayService is left as it runs
    and ``held`` says why, since a spec that fits no node could only break what serves. A pool
    that has no RayService and fits nowhere gets none.
    """
    result = Applied()
    live: dict[str, dict[str, Any]] = {}
    foreign = []
    for pool in model.spec.pools:
        found = await client.get_rayservice(model.namespace, rayservice_name(model.name, pool.name))
        if found is not None and not is_owned_by(found, owner["uid"]):
            foreign.append(found)
        elif found is not None:
            live[pool.name] = found
    result.admissions = tuple(a.keep() if a.pool in live else a for a in admissions)
    held = []
    for pool, admission in zip(model.spec.pools, result.admissions, strict=True):
        if not (admission.admitted or admission.kept) or any(
            rs["metadata"]["name"] == rayservice_name(model.name, pool.name) for rs in foreign
        ):
            continue
        desired = render_rayservice(model, pool, settings=settings, owner=owner)
        current = live.get(pool.name)
        if current is None:
            current = await client.create_rayservice(desired)
            if not is_owned_by(current, owner["uid"]):  # another writer was faster
                foreign.append(current)
                continue
            result.writes.append(f"created RayService {current['metadata']['name']}")
        elif (patch := drift_patch(current, desired)) is not None:
            if admission.kept:
                held.append(admission.message)
                result.rayservices[pool.name] = current
                continue
            current = await client.patch_rayservice(
                model.namespace, current["metadata"]["name"], patch
            )
            result.writes.append(f"patched RayService {current['metadata']['name']}")
        result.rayservices[pool.name] = current
        await _follow_clusters(client, pool, current, desired, result)
    if held:
        result.held = "the spec is not applied; the RayService is kept as it runs: " + "; ".join(
            held
        )
    result.conflict = _conflict_message(model, foreign)
    await _retire(client, model, owner, known, result, settings)
    return result


async def _follow_clusters(
    client: Client,
    pool: api.Pool,
    rayservice: dict[str, Any],
    desired: dict[str, Any],
    result: Applied,
) -> None:
    """Put what KubeRay leaves alone into the pool's live clusters: bounds and tolerations
    (:mod:`.scaling`), and, under upgrade strategy ``None``, a cluster KubeRay will not replace
    (:mod:`.updates`). Note when a pending cluster started (:mod:`.progress`)."""
    clusters = await read_clusters(client, rayservice)
    for name in await apply_bounds(client, clusters, desired):
        result.writes.append(f"patched RayCluster {name}")
    if replaced := await replace_outdated(client, clusters, desired):
        result.writes.append(f"deleted RayCluster {replaced}")
    if clusters.pending is not None and (since := _created_at(clusters.pending)) is not None:
        result.pending_since[pool.name] = since


async def _retire(
    client: Client,
    model: api.InferenceModel,
    owner: Owner,
    known: Iterable[str],
    result: Applied,
    settings: RenderSettings,
) -> None:
    """Delete the model's RayServices that no pool renders (a removed pool's; the single
    RayService of operators before one per pool) once every deployed pool's own RayService
    serves: until then they keep serving what they serve, and ``result.retiring`` names them.
    Unless a deployed pool is over the surge limit (its upgrade strategy is ``None``): then its
    accelerators are not held twice, and the old RayService goes at once, as its cluster would
    under ``None``. One that is gone, or is not the model's, is forgotten (never touched)."""
    current = {rayservice_name(model.name, p.name) for p in model.spec.pools}
    pools = {p.name: p for p in model.spec.pools}
    serving = bool(result.rayservices) and all(
        _serves(model, pools[name], rs) for name, rs in result.rayservices.items()
    )
    wide = any(
        upgrade_strategy(model, pools[name], settings)["type"] == RECREATE
        for name in result.rayservices
    )
    waiting = []
    for name in sorted(set(known) - current):
        found = await client.get_rayservice(model.namespace, name)
        if found is None or not is_owned_by(found, owner["uid"]):
            continue
        if not (serving or wide):
            waiting.append(name)
        elif await client.delete_rayservice(model.namespace, name):
            result.writes.append(f"deleted RayService {name}")
    result.retiring = tuple(waiting)
