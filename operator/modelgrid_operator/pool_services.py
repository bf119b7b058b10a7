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
from modelgrid_operator.handover import serves
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
        held_pools: why each kept pool's RayService was left as it runs (:attr:`held`).
        conflict: the message for RayServices of our names that are not the model's, or "".
        taken: RayServices a create found made by someone else meanwhile (a 409).
        retiring: name -> each RayService of the model that no pool renders and that waits
            to be deleted, as read (it may serve a pool meanwhile: :mod:`.handover`).
        pending_since: pool name -> when its pending (new) Ray cluster was created.
        writes: what was written, e.g. ``created RayService x``, in order.
    """

    rayservices: dict[str, dict[str, Any]] = field(default_factory=dict)
    admissions: tuple[Admission, ...] = ()
    held_pools: list[str] = field(default_factory=list)
    conflict: str = ""
    taken: list[dict[str, Any]] = field(default_factory=list)
    retiring: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_since: dict[str, datetime] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)

    @property
    def held(self) -> str:
        """Why RayServices were left as they run, for ``RayServiceApplied``; "" when none was."""
        if not self.held_pools:
            return ""
        kept = "; ".join(self.held_pools)
        return f"the spec is not applied; the RayService is kept as it runs: {kept}"

    @property
    def action(self) -> str:
        """``created`` when a RayService was created, ``patched`` for any other write."""
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

    A pool that runs is kept even when the memory admission would refuse it now
    (:meth:`Admission.keep`). A pool that has no RayService and fits nowhere gets none.

    Args:
        model: the validated model.
        owner: its name and uid.
        admissions: the memory admission of each pool.
        client: API access.
        settings: render settings.
        known: names of RayServices the model had, from its stored status: those no pool
            renders now are retired (:func:`_retire`).
    """
    result = Applied()
    live, foreign = await _read_pools(client, model, owner)
    result.admissions = tuple(a.keep() if a.pool in live else a for a in admissions)
    taken = {rs["metadata"]["name"] for rs in foreign}
    for pool, admission in zip(model.spec.pools, result.admissions, strict=True):
        deployable = admission.admitted or admission.kept
        if deployable and rayservice_name(model.name, pool.name) not in taken:
            desired = render_rayservice(model, pool, settings=settings, owner=owner)
            await _apply_pool(client, pool, admission, live.get(pool.name), desired, owner, result)
    result.conflict = _conflict_message(model, [*foreign, *result.taken])
    await _retire(client, model, owner, known, result, settings)
    return result


async def _read_pools(
    client: Client, model: api.InferenceModel, owner: Owner
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Each pool's RayService as stored, read by name: pool name -> the model's own, and the
    objects of our names that are someone else's (never written)."""
    live: dict[str, dict[str, Any]] = {}
    foreign = []
    for pool in model.spec.pools:
        found = await client.get_rayservice(model.namespace, rayservice_name(model.name, pool.name))
        if found is not None and is_owned_by(found, owner["uid"]):
            live[pool.name] = found
        elif found is not None:
            foreign.append(found)
    return live, foreign


async def _apply_pool(
    client: Client,
    pool: api.Pool,
    admission: Admission,
    current: dict[str, Any] | None,
    desired: dict[str, Any],
    owner: Owner,
    result: Applied,
) -> None:
    """Create the pool's RayService, or merge-patch it to ``desired``, then follow its clusters.

    A kept pool (:meth:`Admission.keep`) whose RayService would change is left as it runs, with
    its cluster, and ``result.held`` says why: a spec that fits no node could only break what
    serves. A create answered with someone else's object (a 409 after another writer) is noted
    in ``result.taken`` and not written to.
    """
    if current is None:
        current = await client.create_rayservice(desired)
        if not is_owned_by(current, owner["uid"]):
            result.taken.append(current)
            return
        result.writes.append(f"created RayService {current['metadata']['name']}")
    elif (patch := drift_patch(current, desired)) is not None:
        if admission.kept:
            result.rayservices[pool.name] = current
            result.held_pools.append(admission.message)
            return
        meta = current["metadata"]
        current = await client.patch_rayservice(meta["namespace"], meta["name"], patch)
        result.writes.append(f"patched RayService {meta['name']}")
    result.rayservices[pool.name] = current
    await _follow_clusters(client, pool, current, desired, result)


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
        serves(rs, application_name(model, pools[name])) for name, rs in result.rayservices.items()
    )
    wide = any(
        upgrade_strategy(model, pools[name], settings)["type"] == RECREATE
        for name in result.rayservices
    )
    for name in sorted(set(known) - current):
        found = await client.get_rayservice(model.namespace, name)
        if found is None or not is_owned_by(found, owner["uid"]):
            continue
        if not (serving or wide):
            result.retiring[name] = found
        elif await client.delete_rayservice(model.namespace, name):
            result.writes.append(f"deleted RayService {name}")
