"""Each model's reconciles, one at a time: the only place that stores a model's status."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelgrid_serving.claims import Claim

from modelgrid_operator.config import OperatorConfig
from modelgrid_operator.k8s import Client
from modelgrid_operator.reconcile import ModelGone, Outcome, reconcile

_GONE_KEPT = 4096
"""Deleted models remembered: far more than can be deleted while one reconcile runs."""


@dataclass
class TakingTurns:
    """Runs the reconciles of each model one at a time, each writing its status before the next
    one reads it.

    Watch events of the model and of its children, the refresh from memory and the resync from
    the API server all start reconciles, concurrently. Two reconciles of one model could then
    both read the stored status, both compute the same transition with their own clock, and the
    later write would move ``timeToReady`` and ``phaseSince`` after the fact.

    A reconcile from memory that finds another one of the same model already waiting for its
    turn is dropped (``coalesce``): the waiting one reads memory once it runs, so it sees
    whatever the dropped one would have seen. A burst of pod events costs one reconcile or two.
    """

    config: OperatorConfig
    client: Client | None = None
    """What a reconcile reads and writes through unless it is given a client (the operator
    sets one that reads from its watches: :class:`.watched.WatchedClient`)."""
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    """uid -> the status last written for the model (the watch may not have delivered it yet)."""
    _turns: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    _waiting: set[str] = field(default_factory=set)
    """uids with a coalescing reconcile waiting for its turn."""
    _gone: dict[str, None] = field(default_factory=dict)
    """The uids of the latest deleted models (insertion-ordered, at most ``_GONE_KEPT``): a
    reconcile queued for one of them must not write its children again."""

    async def reconcile(
        self,
        body: dict[str, Any],
        claims: Mapping[str, Iterable[Claim]] | None = None,
        *,
        client: Client | None = None,
        coalesce: bool = False,
    ) -> Outcome | None:
        """Reconcile the model and store its status, in this model's turn.

        Args:
            body: the model (its name, namespace and uid are used).
            claims: served name -> claims of the models that declare it.
            client: read and write through this one (the resync's API client) instead.
            coalesce: drop this reconcile (return None) when one of the model is waiting.

        Raises:
            ModelGone: the model was deleted meanwhile.
        """
        client = client or self.client
        assert client is not None, "the operator has not started"
        meta = body["metadata"]
        uid = meta["uid"]
        if coalesce and uid in self._waiting:
            return None
        if coalesce:
            self._waiting.add(uid)
        try:
            async with self._turns[uid]:
                if coalesce:
                    self._waiting.discard(uid)
                return await self._reconcile(body, claims, client)
        finally:
            if coalesce:
                self._waiting.discard(uid)

    async def _reconcile(
        self, body: dict[str, Any], claims: Mapping[str, Iterable[Claim]] | None, client: Client
    ) -> Outcome:
        meta = body["metadata"]
        if meta["uid"] in self._gone:
            raise ModelGone(meta["name"])
        outcome = await reconcile(
            body,
            client=client,
            settings=self.config.render,
            now=self.config.clock(),
            read_facts=self.config.read_facts,
            claims=claims,
        )
        if outcome.status is not None:
            if not await client.patch_model_status(
                meta.get("namespace") or "default", meta["name"], outcome.status
            ):
                raise ModelGone(meta["name"])
            self.statuses[meta["uid"]] = outcome.status
        return outcome

    async def forget(self, uid: str) -> None:
        """A deleted model: refuse its later reconciles, wait out the one in flight (it may
        still be writing a RayService, which would outlive the deletion of its children), then
        drop its turn."""
        self._gone[uid] = None
        while len(self._gone) > _GONE_KEPT:
            del self._gone[next(iter(self._gone))]
        async with self._turns[uid]:
            pass
        self._turns.pop(uid, None)
        self.statuses.pop(uid, None)
