"""Models on demand: load, inspect and unload through the gateway (``/v1/admin/models``).

A load is an InferenceModel like any other. The request's few fields (``uri``, ``name``,
``aliases``, ``accelerator``, ``engine``, ``engineArgs``, ``pools``) become its spec, which the
typed InferenceModel API checks: the one source of truth, handed in as a :data:`SpecCheck` by
whoever assembles the gateway (the gateway imports no operator code), so a bad field is named as
``modelgrid render`` names it (``spec.pools[0].minReplicas``). The model is then written to a
:class:`ModelStore`: the cluster's InferenceModels in one namespace, or the running
``modelgrid up``. An unload withdraws the model's names at once (new requests: 404), waits for
the requests in flight on its backends to finish, then removes it.

What an admin key could try, and what stops it:

- taking over a name another model serves (that model's traffic would reach the new one): a
  served name or alias the routing table knows is refused (409);
- removing models made by others: only models this API created (labelled ``managed-by``, the
  object's uid checked on delete) are removed; others are read-only here;
- choosing the namespace or any field outside the list: the namespace is the configuration's,
  unknown fields are refused, the spec's own rules and the operator's policy still hold;
- flooding: at most ``max_models`` of its own at once, bodies of at most 64 KiB, and at most
  :data:`MAX_CALLS_IN_FLIGHT` admin calls at once (each is a call or two to the cluster's API
  server; more get 429 at once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from ..errors import (
    ConcurrencyLimited,
    Conflict,
    Forbidden,
    InvalidJSON,
    InvalidRequest,
    ModelNotFound,
)
from .auth import KeyPolicy
from .balancer import Balancer
from .catalog import Catalog
from .config import AdminConfig

logger = logging.getLogger(__name__)

ADMIN_PATH = "/v1/admin/models"
MAX_BODY_BYTES = 64 * 1024
"""A load request is a few fields: anything larger is not one."""
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelgrid-admin-api"
"""The label value marking the models this API created: the only ones it removes."""
LOADED_BY_ANNOTATION = "modelgrid.io/loaded-by"
"""The name of the key that loaded the model (never the key): who to ask about it."""
SERVING_PHASES = ("Ready", "Degraded")
UNLOADING = "Unloading"
"""The phase the admin API reports while it drains a model before removing it."""
DRAIN_POLL_S = 0.1
MAX_CALLS_IN_FLIGHT = 8
"""Admin calls served at once, over every key."""
MAX_NAME_LENGTH = 40
"""The InferenceModel's own limit on names (``api.MAX_NAME_LENGTH``)."""


class InvalidSpec(InvalidRequest, code="invalid_spec"):
    """400: the load would make an invalid InferenceModel. ``param`` is the first bad field's
    path as ``modelgrid render`` prints it; the message lists every one.

    Args:
        errors: ``(path, reason)`` per bad field.
    """

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors = list(errors) or [("", "invalid InferenceModel")]
        message = "; ".join(f"{path}: {reason}" if path else reason for path, reason in self.errors)
        super().__init__(message, param=self.errors[0][0] or None)


SpecCheck = Callable[[dict[str, Any]], None]
"""Checks an InferenceModel document with the typed API; raises :class:`InvalidSpec`."""


class ModelStore(Protocol):
    """Where loaded models live: the cluster's InferenceModels, or ``modelgrid up``'s pools.

    Documents are InferenceModels as the Kubernetes API returns them (``status`` included)."""

    namespace: str
    """Where the admin API's models go (``modelgrid up``: ``local``)."""

    def source_of(self, name: str) -> str:
        """The catalog source whose entry serves model ``name`` (to withdraw its names)."""

    async def create(self, document: dict[str, Any]) -> dict[str, Any]:
        """Store a new model. Raises :class:`~modelgrid_serving.errors.Conflict` when one of
        that name exists."""

    async def get(self, name: str) -> dict[str, Any] | None:
        """The model ``name``, or None."""

    async def list(self) -> list[dict[str, Any]]:
        """Every model of the namespace, whoever made it."""

    async def delete(self, name: str, uid: str | None) -> None:
        """Remove model ``name`` (only the object with ``uid``, when given); gone already: fine."""


class LoadRequest(BaseModel):
    """The body of ``POST /v1/admin/models``: its shape only. The values are the typed spec's to
    check, so that a bad one is named as everywhere else."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    uri: str
    name: str | None = None
    aliases: Any = None
    accelerator: Any = None
    engine: Any = None
    engine_args: Any = None
    pools: Any = None


def parse_load(body: bytes) -> LoadRequest:
    """The load request in ``body``.

    Raises:
        InvalidJSON: not a JSON object.
        InvalidRequest: an unknown field, no ``uri``, or a ``uri``/``name`` that is no string
            (``param`` names it).
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidJSON("The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidJSON("The body must be a JSON object.")
    try:
        return LoadRequest.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(map(str, error["loc"]))
        reason = {"extra_forbidden": "unknown field", "missing": "required field is missing"}
        raise InvalidRequest(
            f"{field}: {reason.get(error['type'], error['msg'])}", param=field
        ) from None


def name_from_uri(uri: str) -> str:
    """A model name for a URI that names none: its last path part, as a lowercase DNS label
    starting with a letter (``org/Llama-3.1-8B`` -> ``llama-3-1-8b``; ``x.tar.gz`` -> ``x``)."""
    last = uri.rstrip("/").rsplit("/", 1)[-1]
    last = re.sub(r"\.(tar\.gz|tgz|tar|zip)$", "", last, flags=re.IGNORECASE)
    name = re.sub(r"[^a-z0-9]+", "-", last.lower()).lstrip("-0123456789")
    return name[:MAX_NAME_LENGTH].rstrip("-") or "model"


def to_document(
    request: LoadRequest, *, namespace: str, loaded_by: str, accelerator: str
) -> dict[str, Any]:
    """The InferenceModel a load request asks for (not yet checked).

    Args:
        request: The load.
        namespace: Where it goes (the configuration's, never the request's).
        loaded_by: The key's name, recorded on the object.
        accelerator: The pool's accelerator when the request names neither one nor pools.

    Raises:
        InvalidRequest: both ``accelerator`` and ``pools`` given.
    """
    spec: dict[str, Any] = {"model": {"uri": request.uri}}
    for field, key in (
        ("aliases", "aliases"),
        ("engine", "engine"),
        ("engine_args", "engineArgs"),
        ("pools", "pools"),
    ):
        value = getattr(request, field)
        if value is not None:
            spec[key] = value
    if request.pools is None:
        kind = request.accelerator if request.accelerator is not None else accelerator
        spec["pools"] = [
            {"name": kind if isinstance(kind, str) else "default", "accelerator": kind}
        ]
    elif request.accelerator is not None:
        raise InvalidRequest(
            "accelerator: give accelerator (one pool) or pools, not both", param="accelerator"
        )
    return {
        "apiVersion": "modelgrid.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {
            "name": request.name if request.name is not None else name_from_uri(request.uri),
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": {LOADED_BY_ANNOTATION: loaded_by},
        },
        "spec": spec,
    }


def is_managed(document: dict[str, Any]) -> bool:
    """Whether the admin API created this model (and so may remove it)."""
    labels = (document.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def view(
    document: dict[str, Any], *, unloading: bool = False, routed: bool = True
) -> dict[str, Any]:
    """What the admin API shows of a model: its id (the name to send as ``model``), its spec
    and its status as the operator reports it (phase, phase times, conditions), but for two
    things only the gateway knows: ``Unloading`` while it drains the model, and ``Loading``
    until it routes a model reported Ready (``routed`` False: its watch or poll has not caught
    up), so that a client that waits for Ready never gets a 503 next."""
    meta = document.get("metadata") or {}
    spec = document.get("spec") or {}
    status = dict(document.get("status") or {})
    status.setdefault("phase", "Pending")
    if status["phase"] in SERVING_PHASES and not routed:
        status["phase"] = "Loading"
    if unloading:
        status["phase"] = UNLOADING
    return {
        "id": spec.get("servedModelName") or meta.get("name"),
        "object": "admin.model",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uri": (spec.get("model") or {}).get("uri"),
        "managed": is_managed(document),
        "loaded_by": (meta.get("annotations") or {}).get(LOADED_BY_ANNOTATION),
        "created": meta.get("creationTimestamp"),
        "spec": spec,
        "status": status,
    }


def require_admin(policy: KeyPolicy) -> None:
    """Raises :class:`Forbidden` unless the key has scope ``admin``."""
    if not policy.admin:
        raise Forbidden("This API key lacks the 'admin' scope needed to load or unload models.")


@dataclasses.dataclass(eq=False)
class Admin:
    """Loads and unloads models for keys of scope ``admin``."""

    store: ModelStore
    """Where models live."""
    catalog: Catalog
    """The routing table (names taken) and where an unload withdraws names."""
    balancer: Balancer
    """The requests in flight per backend, which an unload waits for."""
    check_spec: SpecCheck
    """The typed InferenceModel check."""
    config: AdminConfig
    """Drain timeout, the default accelerator and the bound on models."""
    _unloading: dict[str, asyncio.Task[None]] = dataclasses.field(default_factory=dict, init=False)
    _stopping: asyncio.Event = dataclasses.field(default_factory=asyncio.Event, init=False)
    _in_flight: int = dataclasses.field(default=0, init=False)

    # ---- the routes' operations -------------------------------------------------------------

    async def load(self, body: bytes, policy: KeyPolicy) -> dict[str, Any]:
        """Create the model a load request asks for; returns its view (phase Pending).

        Raises:
            InvalidRequest: a bad body; InvalidSpec: a bad field of the spec.
            Conflict: a model of that name exists, a name it would serve is another's, or
                ``max_models`` of the admin API's are loaded.
        """
        with self._slot():
            return await self._load(body, policy)

    async def _load(self, body: bytes, policy: KeyPolicy) -> dict[str, Any]:
        request = parse_load(body)
        document = to_document(
            request,
            namespace=self.store.namespace,
            loaded_by=policy.name,
            accelerator=self.config.accelerator,
        )
        self.check_spec(document)
        name = document["metadata"]["name"]
        if name in self._unloading:
            raise Conflict(f"The model '{name}' is being unloaded; load it again once it is gone.")
        self._check_names_free([name, *document["spec"].get("aliases", [])])
        managed = [d for d in await self.store.list() if is_managed(d)]
        if len(managed) >= self.config.max_models:
            raise Conflict(
                f"The admin API keeps at most {self.config.max_models} models; unload one first."
            )
        self.catalog.restore(self.store.source_of(name))
        created = await self.store.create(document)
        logger.info("admin: %s loaded %s (%s)", policy.name, name, request.uri)
        return view(created)

    async def show(self, name: str) -> dict[str, Any]:
        """The view of model ``name``. Raises ModelNotFound."""
        with self._slot():
            return self._view(await self._get(name))

    async def listing(self) -> dict[str, Any]:
        """Every model of the store's namespace, the admin API's and others' (read-only)."""
        with self._slot():
            return {"object": "list", "data": [self._view(d) for d in await self.store.list()]}

    async def unload(self, name: str, policy: KeyPolicy) -> dict[str, Any]:
        """Withdraw model ``name`` now (new requests: 404), and remove it once its requests in
        flight are done (at most ``drain_timeout_s``); returns its view (phase Unloading).

        Raises:
            ModelNotFound: no such model. Forbidden: one the admin API did not create.
        """
        with self._slot():
            document = await self._get(name)
        if not is_managed(document):
            raise Forbidden(
                f"The model '{name}' was not loaded through the admin API: it is read-only here."
            )
        if name not in self._unloading:
            source = self.store.source_of(name)
            backends = self.catalog.backend_urls_of(source)
            self.catalog.withdraw(source)
            uid = (document.get("metadata") or {}).get("uid")
            task = asyncio.create_task(self._drain_and_delete(name, uid, backends))
            self._unloading[name] = task
            logger.info("admin: %s unloads %s", policy.name, name)
        return view(document, unloading=True)

    # ---- lifecycle (a gateway service) ------------------------------------------------------

    def start(self, session: object) -> None:
        """Nothing to start: unloads run as they are asked for."""

    async def stop(self) -> None:
        """Finish the unloads under way without waiting for their drains: the server has
        already given its requests their grace."""
        self._stopping.set()
        await asyncio.gather(*self._unloading.values(), return_exceptions=True)

    async def wait_unloaded(self, name: str) -> None:
        """Until the unload of ``name`` under way (if any) is done."""
        task = self._unloading.get(name)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # ---- helpers ----------------------------------------------------------------------------

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """One of the :data:`MAX_CALLS_IN_FLIGHT` admin calls; none free: 429 at once."""
        if self._in_flight >= MAX_CALLS_IN_FLIGHT:
            raise ConcurrencyLimited("Too many admin calls at once; retry in a second.")
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    def _view(self, document: dict[str, Any]) -> dict[str, Any]:
        name = (document.get("metadata") or {}).get("name")
        routed = name in self.catalog.table.cards
        return view(document, unloading=name in self._unloading, routed=routed)

    async def _get(self, name: str) -> dict[str, Any]:
        document = await self.store.get(name) if _is_name(name) else None
        if document is None:
            raise ModelNotFound(name)
        return document

    def _check_names_free(self, names: list[Any]) -> None:
        routes = self.catalog.table.routes
        for served in names:
            if isinstance(served, str) and served in routes:
                raise Conflict(
                    f"The name '{served}' is served by the model '{routes[served].model}'; "
                    "pick another name or alias.",
                    param="name" if served == names[0] else "aliases",
                )

    async def _drain_and_delete(self, name: str, uid: str | None, backends: set[str]) -> None:
        try:
            deadline = asyncio.get_running_loop().time() + self.config.drain_timeout_s
            while (
                self.balancer.outstanding(backends)
                and asyncio.get_running_loop().time() < deadline
                and not self._stopping.is_set()
            ):
                await asyncio.sleep(DRAIN_POLL_S)
            await self.store.delete(name, uid)
            logger.info("admin: %s unloaded", name)
        except Exception:  # logged; the model stays withdrawn, a new unload retries
            logger.exception("admin: unloading %s failed", name)
        finally:
            self._unloading.pop(name, None)


def _is_name(name: str) -> bool:
    """A path segment that can be a model's name (anything else is not looked up)."""
    return re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) is not None and len(name) <= 63
