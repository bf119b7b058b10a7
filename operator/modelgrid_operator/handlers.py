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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from modelgrid_operator import api
from modelgrid_operator.k8s import Client
from modelgrid_operator.metrics import OperatorMetrics
from modelgrid_operator.reconcile import (
    FactsReader,
    ModelGone,
    Outcome,
    read_local_facts,
    reconcile,
)
from modelgrid_operator.render.rayservice import rayservice_name
from modelgrid_operator.settings import RenderSettings

RESOURCE = (api.GROUP, api.VERSION, api.PLURAL)
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
    """Keep kopf's bookkeeping in our own annotations and finalizer, out of ``status``.

    The CRD's structural schema prunes unknown status fields, so kopf's default progress
    storage in ``status.kopf`` would vanish on a real cluster.
    """
    settings.persistence.finalizer = f"{api.GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO


def _report(outcome: Outcome, body: kopf.Body, logger: logging.Logger) -> None:
    """Post the outcome's Kubernetes Events and log its phase transition."""
    if outcome.action:
        kopf.info(
            body,
            reason=f"RayService{outcome.action.capitalize()}",
            message=f"RayService {body['metadata']['name']} {outcome.action}",
        )
    if outcome.phase != outcome.previous_phase:
        post = kopf.warn if outcome.phase in _WARNING_PHASES else kopf.info
        post(body, reason=outcome.phase.value, message=outcome.message)
        logger.info("phase %s -> %s: %s", outcome.previous_phase, outcome.phase, outcome.message)


@dataclass
class TakingTurns:
    """Runs the reconciles of each model one at a time, each writing its status before the next
    one reads it.

    kopf runs an object's timer and its change handlers concurrently, and applies a handler's
    ``patch`` only after the handler returned. Two reconciles of one model could then both read
    the stored status, both compute the same transition with their own clock, and the later
    write would move ``timeToReady`` and ``phaseSince`` after the fact.
    """

    config: OperatorConfig
    client: Client | None = None
    _turns: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )

    async def reconcile(self, body: dict[str, Any]) -> Outcome:
        """Reconcile the model and store its status, in this model's turn.

        Raises:
            ModelGone: the model was deleted meanwhile.
        """
        assert self.client is not None, "the operator has not started"
        meta = body["metadata"]
        async with self._turns[meta["uid"]]:
            outcome = await reconcile(
                body,
                client=self.client,
                settings=self.config.render,
                now=self.config.clock(),
                read_facts=self.config.read_facts,
            )
            if outcome.status is not None and not await self.client.patch_model_status(
                meta.get("namespace") or "default", meta["name"], outcome.status
            ):
                raise ModelGone(meta["name"])
        return outcome

    def forget(self, uid: str) -> None:
        """Drop a deleted model's turn."""
        self._turns.pop(uid, None)


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A kopf registry with every modelgrid handler, bound to ``config``."""
    registry = kopf.OperatorRegistry()
    models = TakingTurns(config)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        models.client = config.client_factory()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account first, else the kubeconfig (a private registry has none)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    async def run(body: kopf.Body, logger: logging.Logger) -> None:
        started = time.perf_counter()
        try:
            outcome = await models.reconcile(dict(body))
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
    async def apply(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        """Render and apply the RayService whenever the spec changes or the operator starts."""
        await run(body, logger)

    @kopf.timer(
        *RESOURCE,
        interval=config.refresh_interval,
        initial_delay=config.refresh_interval,
        registry=registry,
    )
    async def refresh(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        """Follow the RayService's status and put back what was changed behind our back."""
        await run(body, logger)

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def delete(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        """Delete the RayService now rather than wait for garbage collection."""
        config.metrics.forget(body)
        models.forget(body["metadata"]["uid"])
        namespace = body["metadata"].get("namespace") or "default"
        name = rayservice_name(body["metadata"]["name"])
        assert models.client is not None
        if await models.client.delete_rayservice(namespace, name):
            logger.info("deleted RayService %s/%s", namespace, name)

    return registry
