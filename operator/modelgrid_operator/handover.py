"""Which RayService serves a pool while the model moves to one RayService per pool. Pure.

Operators before one RayService per pool made one RayService named after the model, holding
every pool's Serve application: ``<model>`` at ``/`` for a model of one pool, ``<model>-<pool>``
at ``/pools/<pool>`` for several. After an upgrade of the operator, each pool gets its own
RayService, and the old one serves on until every pool's own serves (:mod:`.pool_services`).
The gateway routes by the status, so the status must name what serves meanwhile: a pool whose
own RayService does not serve yet stands on the old one's application while that one runs, and
the status gives that RayService, its cluster's replicas and its endpoint for the pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelgrid_operator import api
from modelgrid_operator.render.rayservice import application_name


@dataclass(frozen=True)
class StandIn:
    """A retiring RayService that serves a pool in place of the pool's own.

    Attributes:
        rayservice: the retiring RayService, as read.
        application: the pool's Serve application in it.
        route: the application's route prefix on that RayService's serve Service ("" for ``/``).
    """

    rayservice: Mapping[str, Any]
    application: str
    route: str

    @property
    def name(self) -> str:
        """The retiring RayService's name."""
        return str(self.rayservice["metadata"]["name"])


def serves(rayservice: Mapping[str, Any], application: str) -> bool:
    """The application runs on the RayService's active cluster (KubeRay's serve Service points
    there only then)."""
    active = ((rayservice.get("status") or {}).get("activeServiceStatus")) or {}
    app = (active.get("applicationStatuses") or {}).get(application) or {}
    return app.get("status") == "RUNNING"


def _candidates(model: api.InferenceModel, pool: api.Pool) -> list[tuple[str, str]]:
    """The (application, route) under which an earlier operator's RayService served ``pool``:
    ``<model>-<pool>`` at ``/pools/<pool>``, and for the first pool (the one pool of a model
    that had one) ``<model>`` at ``/``."""
    found = [(application_name(model, pool), f"/pools/{pool.name}")]
    if pool is model.spec.pools[0]:
        found.append((model.name, ""))
    return found


def stand_ins(
    model: api.InferenceModel,
    rayservices: Mapping[str, Mapping[str, Any]],
    retiring: Mapping[str, Mapping[str, Any]],
) -> dict[str, StandIn]:
    """Pool name -> the retiring RayService that serves it, for each pool whose own RayService
    does not serve yet while a retiring one runs the pool's application.

    Args:
        model: the validated model.
        rayservices: pool name -> its own RayService, as read.
        retiring: name -> each RayService of the model that no pool renders, as read.
    """
    result = {}
    for pool in model.spec.pools:
        own = rayservices.get(pool.name)
        if own is not None and serves(own, application_name(model, pool)):
            continue
        found = next(
            (
                StandIn(old, application, route)
                for old in retiring.values()
                for application, route in _candidates(model, pool)
                if serves(old, application)
            ),
            None,
        )
        if found is not None:
            result[pool.name] = found
    return result
