"""The kopf handlers: thin wrappers that call :func:`~modelgrid_operator.reconcile.reconcile`,
store its status and turn phase transitions into Kubernetes Events.

Handlers are registered on a registry built by :func:`build_registry`, not on kopf's global
one, so a test can run the operator with its own settings and nothing leaks between runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from modelgrid_serving.claims import Claim, claim_of

from modelgrid_operator import api
from modelgrid_operator.k8s import Client, KubeRayMissing
from modelgrid_operator.metrics import OperatorMetrics
from modelgrid_operator.ownership import is_owned_by
from modelgrid_operator.pod_failures import describe
from modelgrid_operator.reconcile import (
    FactsReader,
    ModelGone,
    Outcome,
    read_local_facts,
    reconcile,
)
from modelgrid_operator.settings import RenderSettings

RESOURCE = (api.GROUP, api.VERSION, api.PLURAL)
LEGACY_FINALIZER = f"{api.GROUP}/finalizer"
"""The finalizer earlier versions of the operator put on every model; this one removes it."""
_WARNING_PHASES = {api.Phase.FAILED, api.Phase.DEGRADED}


@dataclass(frozen=True)
class OperatorConfig:
    """How the operator runs.

    Attributes:
        render: images and cluster conventions for the renderers.
        refresh_interval: seconds between status refreshes (and drift checks) of each model.
        client_factory: makes the API client once the operator starts.
        clock: the current time; tests may pin it.
        metrics: where reconciles and model status are counted (``--metrics-port`` serves it).
        read_facts: what the memory admission reads of a model's size beyond its spec (a model
            directory it can see; ``--hub-metadata`` adds the Hugging Face Hub).
    """

    render: RenderSettings = field(default_factory=RenderSettings)
    refresh_interval: float = 10.0
    client_factory: Callable[[], Client] = Client.from_environment
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    read_facts: FactsReader = read_local_facts


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Keep kopf's bookkeeping in our own annotations, out of ``status``.

    The CRD's structural schema prunes unknown status fields, so kopf's default progress
    storage in ``status.kopf`` would vanish on a real cluster. The finalizer is named although
    no handler needs one any more: kopf removes a finalizer of that name that no handler
    requires, which releases models that older versions of the operator blocked.
    """
    settings.persistence.finalizer = LEGACY_FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO


def _report(outcome: Outcome, body: kopf.Body, logger: logging.Logger) -> None:
    """Post the outcome's Kubernetes Events (a Warning for each pod failure seen first, with
    the pod's own reason) and log its phase transition."""
    for failure in outcome.new_pod_failures:
        kopf.warn(body, reason=failure.reason, message=describe(failure))
    if outcome.action:
        kopf.info(
            body,
            reason=f"RayService{outcome.action.capitalize()}",
            message=f"RayServices of {body['metadata']['name']} {outcome.action}",
        )
    if outcome.phase != outcome.previous_phase:
        post = kopf.warn if outcome.phase in _WARNING_PHASES else kopf.info
        post(body, reason=outcome.phase.value, message=outcome.message)
        logger.info("phase %s -> %s: %s", outcome.previous_phase, outcome.phase, outcome.message)


_GONE_KEPT = 4096
"""Deleted models remembered: far more than can be deleted while one reconcile runs."""


@dataclass
class TakingTurns:
    """Runs the reconciles of each model one at a time, each writing its status before the next
    one reads it.

    The periodic refresh and kopf's change handlers run concurrently, and kopf applies a handler's
    ``patch`` only after the handler returned. Two reconciles of one model could then both read
    the stored status, both compute the same transition with their own clock, and the later
    write would move ``timeToReady`` and ``phaseSince`` after the fact.
    """

    config: OperatorConfig
    client: Client | None = None
    _turns: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    _gone: dict[str, None] = field(default_factory=dict)
    """The uids of the latest deleted models (insertion-ordered, at most ``_GONE_KEPT``): a
    reconcile queued for one of them must not write its children again."""

    async def reconcile(
        self, body: dict[str, Any], claims: Mapping[str, Iterable[Claim]] | None = None
    ) -> Outcome:
        """Reconcile the model and store its status, in this model's turn.

        Args:
            body: the model (its name, namespace and uid are used).
            claims: served name -> claims of the models that declare it.

        Raises:
            ModelGone: the model was deleted meanwhile.
        """
        assert self.client is not None, "the operator has not started"
        meta = body["metadata"]
        async with self._turns[meta["uid"]]:
            if meta["uid"] in self._gone:
                raise ModelGone(meta["name"])
            outcome = await reconcile(
                body,
                client=self.client,
                settings=self.config.render,
                now=self.config.clock(),
                read_facts=self.config.read_facts,
                claims=claims,
            )
            if outcome.status is not None and not await self.client.patch_model_status(
                meta.get("namespace") or "default", meta["name"], outcome.status
            ):
                raise ModelGone(meta["name"])
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


def _reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the refresh needs of a model: enough to name it, read it, and post its Events."""
    meta = body["metadata"]
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace"), "uid": meta["uid"]},
    }


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A kopf registry with every modelgrid handler, bound to ``config``.

    No handler needs a finalizer, so deleting a model or its namespace never waits for the
    operator: the RayService's owner reference lets Kubernetes collect it. Two kopf features
    would add one, and are avoided on purpose: a mandatory ``on.delete`` handler, and kopf
    timers (kopf 1.45 puts a finalizer on every object a timer or daemon runs for). The periodic
    refresh is therefore one task of the operator that walks the ``model_refs`` index; the
    first change handler starts it, so that it runs in kopf's handler context, the only one
    from which kopf posts Events.

    Name claims come from the ``model_claims`` index rather than a LIST per reconcile: kopf
    keeps it from the watch it runs anyway and fills it before any handler runs, so every
    reconcile sees every model's claim without an API call (a LIST of all models per model per
    refresh would grow with the square of the number of models).
    """
    registry = kopf.OperatorRegistry()
    models = TakingTurns(config)
    refreshing: list[asyncio.Task[None]] = []
    kopf_settings = kopf.OperatorSettings()  # replaced by the operator's own at startup

    @kopf.index(*RESOURCE, id="model_claims", registry=registry)
    def model_claims(body: kopf.Body, **_: Any) -> dict[str, Claim]:
        """Served name -> the claim of each model that declares it."""
        claim = claim_of(body)
        return {name: claim for name in claim.names}

    @kopf.index(*RESOURCE, id="model_refs", registry=registry)
    def model_refs(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        """(namespace, name) -> what the refresh needs of each model."""
        meta = body["metadata"]
        return {(meta.get("namespace") or "default", meta["name"]): _reference(body)}

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        nonlocal kopf_settings
        configure_kopf(settings)
        kopf_settings = settings
        models.client = config.client_factory()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in refreshing:
            task.cancel()
        await asyncio.gather(*refreshing, return_exceptions=True)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account first, else the kubeconfig (a private registry has none)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    async def run(
        body: kopf.Body,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        claims: Mapping[str, Iterable[Claim]],
    ) -> None:
        started = time.perf_counter()
        try:
            outcome = await models.reconcile(dict(body), claims)
        except ModelGone:
            logger.debug("deleted while being reconciled; nothing to do")
            return
        except Exception as exc:
            config.metrics.failed(body, exc, seconds=time.perf_counter() - started)
            raise
        _report(outcome, body, logger)
        config.metrics.reconciled(
            body,
            action=outcome.action,
            status=outcome.status,
            seconds=time.perf_counter() - started,
        )

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    async def apply(
        body: kopf.Body,
        logger: logging.Logger,
        model_claims: kopf.Index[str, Claim],
        model_refs: kopf.Index[tuple[str, str], dict[str, Any]],
        **_: Any,
    ) -> None:
        """Render and apply the RayService whenever the spec changes or the operator starts."""
        if not refreshing:  # started from a handler: kopf posts Events only in its context
            refreshing.append(asyncio.create_task(refresh(model_refs, model_claims)))
        await run(body, logger, model_claims)

    async def refresh(
        refs: kopf.Index[tuple[str, str], dict[str, Any]],
        claims: kopf.Index[str, Claim],
    ) -> None:
        """Every ``refresh_interval``: follow each RayService's status and put back what was
        changed behind our back (models reconcile concurrently, each in its own turn)."""

        async def one(raw: dict[str, Any]) -> None:
            body = kopf.Body(raw)
            logger = kopf.LocalObjectLogger(body=body, settings=kopf_settings)
            try:
                await run(body, logger, claims)
            except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the rest
                logger.error("refresh failed: %s", exc)

        while True:
            await asyncio.sleep(config.refresh_interval)
            await asyncio.gather(*(one(raw) for store in list(refs.values()) for raw in store))

    @kopf.on.event(*RESOURCE, registry=registry)
    async def gone(type: str | None, body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        """A deleted model: forget it, and delete its RayServices now rather than wait for
        garbage collection (only those the model owns; without the operator, Kubernetes'
        garbage collector does the same through the owner references)."""
        if type != "DELETED":
            return
        config.metrics.forget(body)
        await models.forget(body["metadata"]["uid"])
        namespace = body["metadata"].get("namespace") or "default"
        assert models.client is not None
        try:
            children = await models.client.list_rayservices(namespace, body["metadata"]["name"])
        except KubeRayMissing:
            return  # no RayService API: nothing of ours to delete
        for child in children:
            name = child["metadata"]["name"]
            ours = is_owned_by(child, body["metadata"]["uid"])
            if ours and await models.client.delete_rayservice(namespace, name):
                logger.info("deleted RayService %s/%s", namespace, name)

    return registry
