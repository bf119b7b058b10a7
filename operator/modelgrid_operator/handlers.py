"""The kopf handlers: thin wrappers that call :class:`~modelgrid_operator.turns.TakingTurns`,
which reconciles and stores the status, and turn phase transitions into Kubernetes Events.

Handlers are registered on a registry built by :func:`build_registry`, not on kopf's global
one, so a test can run the operator with its own settings and nothing leaks between runs.

The operator is driven by watches. kopf watches the models and every kind a reconcile reads (the
models' RayServices, their RayClusters, pods and NetworkPolicies, and the nodes), and keeps them
in its indexes (:mod:`.watched`); a child's event reconciles its model from there, without a
read. Two periodic passes stand behind the events: a refresh from memory, for what changes with
time alone, and a slow resync from the API server, for an event the watches missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from modelgrid_serving.claims import Claim, claim_of

from modelgrid_operator import api, readiness
from modelgrid_operator.config import OperatorConfig
from modelgrid_operator.k8s import (
    RAY_CLUSTERS,
    RAY_GROUP,
    RAY_PLURAL,
    RAY_VERSION,
    Client,
    KubeRayMissing,
)
from modelgrid_operator.ownership import is_owned_by
from modelgrid_operator.pod_failures import describe
from modelgrid_operator.reconcile import ModelGone, Outcome
from modelgrid_operator.render.metadata import MODEL_LABEL
from modelgrid_operator.turns import TakingTurns
from modelgrid_operator.watched import (
    ResyncClient,
    Watched,
    WatchedClient,
    by_model,
    by_name,
    latest,
    model_of,
    node,
)

__all__ = ["OperatorConfig", "build_registry", "configure_kopf"]

RESOURCE = (api.GROUP, api.VERSION, api.PLURAL)
LEGACY_FINALIZER = f"{api.GROUP}/finalizer"
"""The finalizer earlier versions of the operator put on every model; this one removes it."""
_WARNING_PHASES = {api.Phase.FAILED, api.Phase.DEGRADED}
CHILDREN: dict[str, tuple[str, str, str]] = {
    "rayservices": (RAY_GROUP, RAY_VERSION, RAY_PLURAL),
    "rayclusters": (RAY_GROUP, RAY_VERSION, RAY_CLUSTERS),
    "pods": ("", "v1", "pods"),
    "network_policies": ("networking.k8s.io", "v1", "networkpolicies"),
}
"""Index id -> the kind a reconcile reads of a model's children, each watched."""
_LABELLED = {"pods"}
"""The children watched by the model's label. RayServices and NetworkPolicies are read by name
whoever made them (one of our names that is someone else's is never written), and KubeRay's
RayClusters need not carry the label."""


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


def _logger(body: kopf.Body, settings: kopf.OperatorSettings) -> logging.LoggerAdapter[Any]:
    """A logger that names the model, as kopf's own handler loggers do."""
    return kopf.LocalObjectLogger(body=body, settings=settings)


@dataclass
class _Running:
    """What the handlers share while the operator runs: the models' turns, what kopf watches,
    and the periodic passes."""

    config: OperatorConfig
    models: TakingTurns = field(init=False)
    api: Client = field(init=False)
    """The API client (writes, and the resync's reads)."""
    resync_client: Client = field(init=False)
    kopf_settings: kopf.OperatorSettings = field(default_factory=kopf.OperatorSettings)
    """Replaced by the operator's own at startup."""
    watched: Watched | None = None
    claims: Mapping[str, Iterable[Claim]] = field(default_factory=dict)
    passes: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.models = TakingTurns(self.config)

    def start(self, client: Client, settings: kopf.OperatorSettings) -> None:
        """At startup: the API client, and kopf's settings (for the loggers of the passes)."""
        self.kopf_settings, self.api = settings, client

    def follow(self, indexes: Mapping[str, Any]) -> None:
        """From the first handler kopf runs (indexes reach handlers only): read from them, and
        start the periodic passes there, in kopf's handler context, the only one from which
        kopf posts Events."""
        if self.watched is not None:
            return
        self.claims = indexes["model_claims"]
        self.watched = Watched(
            models=indexes["models"],
            nodes=indexes["nodes"],
            **{kind: indexes[kind] for kind in CHILDREN},
        )
        self.models.client = WatchedClient.over(self.api, self.watched, self.models.statuses)
        self.resync_client = ResyncClient.over(
            self.api, self.watched, self.models.statuses, self.models.client.known
        )
        self.passes.append(asyncio.create_task(self._refresh()))
        self.passes.append(asyncio.create_task(self._resync()))

    async def stop(self) -> None:
        for task in self.passes:
            task.cancel()
        await asyncio.gather(*self.passes, return_exceptions=True)

    async def run(
        self,
        body: kopf.Body,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        *,
        through_api: bool = False,
    ) -> None:
        """Reconcile one model in its turn (from memory, or ``through_api``), count it, and
        post its Events."""
        started = time.perf_counter()
        client = self.resync_client if through_api else None
        try:
            outcome = await self.models.reconcile(
                dict(body), self.claims, client=client, coalesce=not through_api
            )
        except ModelGone:
            logger.debug("deleted while being reconciled; nothing to do")
            return
        except Exception as exc:
            self.config.metrics.failed(body, exc, seconds=time.perf_counter() - started)
            raise
        if outcome is None:
            return  # another reconcile of the model waits for its turn: it does this one's work
        _report(outcome, body, logger)
        self.config.metrics.reconciled(
            body,
            action=outcome.action,
            status=outcome.status,
            seconds=time.perf_counter() - started,
        )

    async def run_quietly(self, raw: Mapping[str, Any], *, through_api: bool = False) -> None:
        """:meth:`run` for a periodic pass: one model's failure is logged, not raised."""
        body = kopf.Body(dict(raw))
        logger = _logger(body, self.kopf_settings)
        try:
            await self.run(body, logger, through_api=through_api)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the rest
            logger.error("reconcile failed: %s", exc)

    def _every_model(self) -> list[dict[str, Any]]:
        assert self.watched is not None
        return [raw for store in list(self.watched.models.values()) for raw in store]

    async def _refresh(self) -> None:
        """Every ``refresh_interval``: reconcile each model from memory (no reads), for what
        changes with time alone."""
        while True:
            await asyncio.sleep(self.config.refresh_interval)
            await asyncio.gather(*(self.run_quietly(raw) for raw in self._every_model()))

    async def _resync(self) -> None:
        """Reconcile each model from the API server once per ``resync_interval``, one model at a
        time, spread over the interval: the reads never come in a burst, and a change a watch
        missed is put right within the interval."""
        while True:
            models = self._every_model()
            pause = self.config.resync_interval / max(1, len(models))
            if not models:
                await asyncio.sleep(pause)
            for raw in models:
                await asyncio.sleep(pause)
                await self.run_quietly(raw, through_api=True)

    async def child_changed(self, kind: str, body: kopf.Body) -> None:
        """A child changed: reconcile its model from memory (the index already holds the
        change). A model kopf does not watch (another namespace) or no longer has is left."""
        assert self.watched is not None
        key = model_of(kind, body, self.watched)
        model = latest(self.watched.models, key) if key else None
        if model is not None:
            await self.run_quietly(model)

    async def delete_children(self, body: kopf.Body, logger: logging.Logger) -> None:
        """A deleted model: forget it, and delete its RayServices now rather than wait for
        garbage collection (only those the model owns; without the operator, Kubernetes'
        garbage collector does the same through the owner references)."""
        self.config.metrics.forget(body)
        await self.models.forget(body["metadata"]["uid"])
        namespace = body["metadata"].get("namespace") or "default"
        try:
            children = await self.api.list_rayservices(namespace, body["metadata"]["name"])
        except KubeRayMissing:
            return  # no RayService API: nothing of ours to delete
        for child in children:
            name = child["metadata"]["name"]
            ours = is_owned_by(child, body["metadata"]["uid"])
            if ours and await self.api.delete_rayservice(namespace, name):
                logger.info("deleted RayService %s/%s", namespace, name)


def _register_indexes(registry: kopf.OperatorRegistry) -> None:
    """The models, and everything a reconcile reads, kept in memory by kopf's watches.

    Name claims come from the ``model_claims`` index rather than a LIST per reconcile: kopf
    fills it before any handler runs, so every reconcile sees every model's claim without an
    API call (a LIST of all models per model would grow with the square of the models).
    """

    @kopf.index(*RESOURCE, id="model_claims", registry=registry)
    def model_claims(body: kopf.Body, **_: Any) -> dict[str, Claim]:
        """Served name -> the claim of each model that declares it."""
        claim = claim_of(body)
        return {name: claim for name in claim.names}

    kopf.index(*RESOURCE, id="models", registry=registry)(_indexing(by_name))
    kopf.index("", "v1", "nodes", id="nodes", registry=registry)(_indexing(node))
    for kind, (group, version, plural) in CHILDREN.items():
        labels = {MODEL_LABEL: kopf.PRESENT} if kind in _LABELLED else None
        index = by_model if kind == "pods" else by_name
        kopf.index(group, version, plural, id=kind, labels=labels, registry=registry)(
            _indexing(index)
        )


def _indexing(index: Any) -> Any:
    """A kopf indexing function from one of :mod:`.watched`'s (kopf passes keywords only)."""

    def indexing(body: kopf.Body, **_: Any) -> Any:
        return index(body)

    return indexing


def _register_lifecycle(registry: kopf.OperatorRegistry, running: _Running) -> None:
    """Startup (kopf's settings, the API client), cleanup (the passes) and login."""

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        running.start(running.config.client_factory(), settings)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await running.stop()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account first, else the kubeconfig (a private registry has none)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def _register_models(registry: kopf.OperatorRegistry, running: _Running) -> None:
    """A model's spec changed or the operator started: reconcile; a model deleted: its
    RayServices go with it."""

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    async def apply(body: kopf.Body, logger: logging.Logger, **kwargs: Any) -> None:
        """Render and apply the RayService whenever the spec changes or the operator starts."""
        running.follow(kwargs)
        await running.run(body, logger)

    @kopf.on.event(*RESOURCE, registry=registry)
    async def gone(type: str | None, body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        if type == "DELETED":
            await running.delete_children(body, logger)


def _register_children(registry: kopf.OperatorRegistry, running: _Running) -> None:
    """A child's change (or deletion) reconciles its model: drift is put back and the status
    follows at once. kopf's initial listing is left out: resuming covers it."""
    for kind, (group, version, plural) in CHILDREN.items():
        labels = {MODEL_LABEL: kopf.PRESENT} if kind in _LABELLED else None

        async def changed(
            type: str | None, body: kopf.Body, resource: kopf.Resource, **kwargs: Any
        ) -> None:
            if type is not None:
                running.follow(kwargs)
                await running.child_changed(resource.plural, body)

        kopf.on.event(
            group, version, plural, id=f"{kind}_changed", labels=labels, registry=registry
        )(changed)


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A kopf registry with every modelgrid handler, bound to ``config``.

    No handler needs a finalizer, so deleting a model or its namespace never waits for the
    operator: the RayService's owner reference lets Kubernetes collect it. Two kopf features
    would add one, and are avoided on purpose: a mandatory ``on.delete`` handler, and kopf
    timers (kopf 1.45 puts a finalizer on every object a timer or daemon runs for). The
    periodic passes are therefore tasks of the operator that walk the ``models`` index.

    The operator that runs the registry waits for its indexes in linear time, not quadratic
    (:mod:`.readiness`): every caller builds the registry before it starts kopf.
    """
    readiness.install()
    registry = kopf.OperatorRegistry()
    running = _Running(config)
    _register_indexes(registry)
    _register_lifecycle(registry, running)
    _register_models(registry, running)
    _register_children(registry, running)
    return registry
