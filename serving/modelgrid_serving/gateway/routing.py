"""The routing table: served names to backends, built from what the sources report. Pure.

Sources report :class:`ModelEntry` values; :func:`build_table` merges them (entries with the same
name pool their backends) into an immutable :class:`RoutingTable`. The gateway swaps tables
atomically when anything changes, so a request sees one consistent table. The listing bodies are
encoded once per table, not per request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import InvalidRequest, ModelNotFound, ModelNotReady
from ..protocol import ModelCard, ModelList, PoolCard
from ..protocol.capabilities import ALL_CAPABILITIES, Capability

logger = logging.getLogger(__name__)

NOT_READY_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Backend:
    """One OpenAI-compatible endpoint that serves a model."""

    url: str
    """Base URL ending in ``/v1``; also the backend's identity for load and health state."""
    pool: str = "default"
    ready: bool = True
    """What the source says (InferenceModel phase, static: always)."""
    upstream_model: str | None = None
    """The name to send upstream when it differs from the served name."""
    api_key: str | None = None
    namespace: str | None = None
    """The namespace of the InferenceModel it serves (static backends: none)."""
    capabilities: frozenset[Capability] = ALL_CAPABILITIES
    """What its engine serves (:mod:`~modelgrid_serving.protocol.capabilities`); a backend no
    source declares anything for is taken to serve everything (its own errors answer)."""


@dataclass(frozen=True)
class PoolInfo:
    """Replica counts of one pool, as the operator reports them."""

    name: str
    accelerator: str | None = None
    engine: str | None = None
    ready_replicas: int = 0
    desired_replicas: int = 0


@dataclass(frozen=True)
class ConditionInfo:
    """One condition of an InferenceModel's status, as the console shows it."""

    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ResourceStatus:
    """What an InferenceModel's status says beyond routing: shown by the console, not routed on."""

    resource: str
    """``namespace/name`` of the InferenceModel."""
    phase: str = "Pending"
    phase_since: str | None = None
    conditions: tuple[ConditionInfo, ...] = ()
    time_to_ready: tuple[tuple[str, float], ...] = ()
    """Seconds per phase on the way to the first Ready, in phase order."""
    ready_after_s: float | None = None
    """Seconds from creation to the first Ready; ``None`` until then."""


@dataclass(frozen=True)
class ModelEntry:
    """One model as one source sees it."""

    name: str
    aliases: tuple[str, ...] = ()
    backends: tuple[Backend, ...] = ()
    pools: tuple[PoolInfo, ...] = ()
    source: str = "static"
    created: int = 0
    statuses: tuple[ResourceStatus, ...] = ()
    """The InferenceModels' statuses (none for static models)."""
    max_model_len: int | None = None
    """The context length in tokens, when the source says it."""

    @property
    def namespaces(self) -> frozenset[str]:
        """The namespaces of the InferenceModels behind this entry (static models: none)."""
        return frozenset(s.resource.partition("/")[0] for s in self.statuses)


@dataclass(frozen=True)
class Route:
    """Where a request for one model goes: its canonical name and its usable backends."""

    model: str
    backends: tuple[Backend, ...]
    """Ready backends only; empty when the model is known but not ready."""
    max_model_len: int | None = None
    """The model's context length, when known: a larger ``max_tokens`` is refused."""
    pools: frozenset[str] = frozenset()
    """Every pool of the model's backends, ready or not (a pinned pool that is not ready: 503)."""
    lacking: frozenset[Capability] = field(init=False, repr=False, compare=False)
    """What some ready backend cannot do: a request is searched only for these (none: the
    capability filter costs nothing)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lacking", capabilities_lacking(self.backends))


def capabilities_lacking(backends: Iterable[Backend]) -> frozenset[Capability]:
    """The capabilities some of ``backends`` lack."""
    return frozenset().union(*(ALL_CAPABILITIES - b.capabilities for b in backends))


@dataclass(frozen=True)
class RoutingTable:
    """Every served name and alias, resolved to a :class:`Route`."""

    routes: Mapping[str, Route] = field(default_factory=dict)
    """served name or alias -> route (aliases share their model's route)."""
    models: Mapping[str, ModelEntry] = field(default_factory=dict)
    """canonical name -> merged entry."""
    listing: bytes = b'{"object":"list","data":[]}'
    """``GET /v1/models`` body: every served name of every ready model."""
    cards: Mapping[str, bytes] = field(default_factory=dict)
    """served name -> ``GET /v1/models/{id}`` body, ready models only."""
    conflicts: tuple[str, ...] = ()
    """Names two models claimed, one line each (the first claim wins)."""

    def resolve(self, requested: object, allowed: Mapping[str, Route] | None = None) -> Route:
        """The route for a request's ``model`` field, as the caller's key may use it.

        The key's allowlist is applied before anything about the model is told: a model the
        key may not use answers exactly as one that does not exist (404), ready or not.

        Args:
            requested: The request's ``model``.
            allowed: What the key may use (:func:`allowed_routes`); ``None``: everything.

        Raises:
            InvalidRequest: ``model`` is missing or not a non-empty string.
            ModelNotFound: no served name or alias matches, or not one the key may use (404).
            ModelNotReady: the model is known but has no ready backend (503, Retry-After).
        """
        if not isinstance(requested, str) or not requested:
            raise InvalidRequest(
                "'model' is a required property (a served model name)", param="model"
            )
        route = self.routes.get(requested)
        if route is not None and allowed is not None:
            route = allowed.get(route.model)
        if route is None:
            raise ModelNotFound(requested)
        if not route.backends:
            raise ModelNotReady(
                f"The model '{requested}' is loading or has no ready replica; retry shortly.",
                retry_after_s=NOT_READY_RETRY_AFTER_S,
            )
        return route

    def served_names(self, model: str) -> tuple[str, ...]:
        """The canonical name and aliases of ``model`` (canonical), as routed."""
        entry = self.models.get(model)
        return (entry.name, *entry.aliases) if entry else ()


def build_table(
    entries: Iterable[ModelEntry], *, down: frozenset[str] = frozenset()
) -> RoutingTable:
    """Merge the sources' entries into a routing table.

    Args:
        entries: Every source's models. Entries with the same name are one model whose backends
            are pooled (an NVIDIA and an Apple InferenceModel may serve one name).
        down: Backend URLs the health probe found down; they are not routed to.

    Returns:
        The table. A name claimed by two different models goes to the first claimant (by the
        order of ``entries``) and is reported in ``conflicts``.
    """
    merged = _merge_entries(entries)
    owners, conflicts = _claim_names(merged)
    routes = _routes(merged, owners, down)
    listing, cards = _model_cards(routes, merged)
    for line in conflicts:
        logger.warning("routing: %s; the first claim wins", line)
    return RoutingTable(
        routes=routes, models=merged, listing=listing, cards=cards, conflicts=tuple(conflicts)
    )


def _merge_entries(entries: Iterable[ModelEntry]) -> dict[str, ModelEntry]:
    """Canonical name -> one entry, in the order names first appear: sources that serve the
    same name (an NVIDIA and an Apple InferenceModel) are one model to a client."""
    merged: dict[str, ModelEntry] = {}
    for entry in entries:
        prior = merged.get(entry.name)
        merged[entry.name] = entry if prior is None else _merge_two(prior, entry)
    return merged


def _merge_two(prior: ModelEntry, entry: ModelEntry) -> ModelEntry:
    """``prior`` and ``entry`` of one name as one: their aliases, backends (each once), pools
    and statuses; the earliest creation time and the smallest context length known, so that
    no request the smaller backend would refuse is let through."""
    return ModelEntry(
        name=entry.name,
        aliases=tuple(dict.fromkeys((*prior.aliases, *entry.aliases))),
        backends=(*prior.backends, *(b for b in entry.backends if b not in prior.backends)),
        pools=(*prior.pools, *entry.pools),
        source=f"{prior.source},{entry.source}",
        created=min(prior.created, entry.created) if prior.created else entry.created,
        statuses=(*prior.statuses, *entry.statuses),
        max_model_len=min(
            (n for n in (prior.max_model_len, entry.max_model_len) if n is not None),
            default=None,
        ),
    )


def _claim_names(merged: Mapping[str, ModelEntry]) -> tuple[dict[str, str], list[str]]:
    """Who owns each served name (name or alias -> canonical model), and one line per name two
    models claimed: the first claim wins, so a new model can never take over a served name."""
    owners: dict[str, str] = {}
    conflicts: list[str] = []
    for name in merged:  # canonical names first: an alias never shadows a model's own name
        owners[name] = name
    for name, entry in merged.items():
        for alias in entry.aliases:
            owner = owners.setdefault(alias, name)
            if owner != name:
                conflicts.append(f"{alias!r} is claimed by {owner!r} and {name!r}")
    return owners, conflicts


def _routes(
    merged: Mapping[str, ModelEntry], owners: Mapping[str, str], down: frozenset[str]
) -> dict[str, Route]:
    """Served name -> route over the model's ready backends that the probe has not found down;
    a model's names and aliases share one route object (the stats tell ready backends by it)."""
    routes: dict[str, Route] = {}
    for name, entry in merged.items():
        ready = tuple(b for b in entry.backends if b.ready and b.url not in down)
        route = Route(
            model=name,
            backends=ready,
            max_model_len=entry.max_model_len,
            pools=frozenset(b.pool for b in entry.backends),
        )
        for served in (name, *entry.aliases):
            if owners[served] == name:
                routes[served] = route
    return routes


def _model_cards(
    routes: Mapping[str, Route], merged: Mapping[str, ModelEntry]
) -> tuple[bytes, dict[str, bytes]]:
    """The ``GET /v1/models`` body and each ``GET /v1/models/{id}`` body, encoded once per
    table; only ready models are listed (an alias names its model as ``root``)."""
    cards: dict[str, bytes] = {}
    data: list[ModelCard] = []
    for served, route in routes.items():
        if not route.backends:
            continue
        card = ModelCard(
            id=served,
            created=merged[route.model].created,
            root=route.model if served != route.model else None,
            capabilities=_names(frozenset().union(*(b.capabilities for b in route.backends))),
            pools=[
                PoolCard(name=pool, capabilities=_names(caps))
                for pool, caps in pool_capabilities(route.backends).items()
            ],
        )
        data.append(card)
        cards[served] = card.model_dump_json(exclude_none=True).encode()
    return ModelList(data=data).model_dump_json(exclude_none=True).encode(), cards


def pool_capabilities(backends: Iterable[Backend]) -> dict[str, frozenset[Capability]]:
    """Each pool of ``backends`` (in order) with what all its backends serve."""
    out: dict[str, frozenset[Capability]] = {}
    for b in backends:
        out[b.pool] = out[b.pool] & b.capabilities if b.pool in out else b.capabilities
    return out


def _names(capabilities: frozenset[Capability]) -> list[str]:
    """Capability names in the declaration's order."""
    return [c.value for c in Capability if c in capabilities]


def allowed_models(table: RoutingTable, names: Iterable[str]) -> frozenset[str]:
    """The canonical models that ``names`` (names or aliases) designate in ``table``.

    A name the table does not know stays as is, so an allowlist may name a model before it exists.
    """
    return frozenset(table.routes[n].model if n in table.routes else n for n in names)


def allowed_routes(
    table: RoutingTable, models: Iterable[str] | None, namespaces: frozenset[str] | None
) -> dict[str, Route]:
    """What a key with these allowlists may use: canonical model -> its route for the key.

    A model the ``models`` allowlist designates keeps its whole route. A model served from an
    allowed namespace is allowed with the backends of those namespaces only: where one name is
    shared across namespaces, a key of team-a never reaches team-b's replicas.
    """
    names = allowed_models(table, models or ())
    out: dict[str, Route] = {}
    for model, entry in table.models.items():
        route = table.routes[model]
        if model in names:
            out[model] = route
        elif namespaces and entry.namespaces & namespaces:
            backends = tuple(b for b in route.backends if b.namespace in namespaces)
            pools = frozenset(b.pool for b in entry.backends if b.namespace in namespaces)
            out[model] = Route(
                model=model, backends=backends, max_model_len=route.max_model_len, pools=pools
            )
    return out


def filter_listing(table: RoutingTable, allowed: Mapping[str, Route]) -> bytes:
    """The listing restricted to what ``allowed`` (:func:`allowed_routes`) makes ready."""
    cards = [
        json.loads(body)
        for served, body in table.cards.items()
        if (route := allowed.get(table.routes[served].model)) is not None and route.backends
    ]
    return json.dumps({"object": "list", "data": cards}, separators=(",", ":")).encode()
