"""The web console: its static files under ``/ui/`` and ``GET /v1/console``, the JSON it polls.

The page is three hand-written files in ``ui/`` (no build step, no CDN), read once at start and
served with a strict Content-Security-Policy: scripts and styles only from the gateway, fetches
only to the gateway. The shell loads without a key; everything it shows comes from ``/v1``
routes, which need one when auth is on. ``/v1/console`` is one poll for the whole page: per
model its state, pools, the InferenceModels' phases, conditions and time to ready, its backends'
load, and live figures (:mod:`.live`). A key with an allowlist sees only its models.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .asgi import JSON, Headers, Scope, header
from .auth import KeyPolicy
from .live import LiveFigures
from .routing import ModelEntry, ResourceStatus, Route
from .sources import SERVING_PHASES

if TYPE_CHECKING:
    from .state import GatewayState

Handler = Callable[[Scope, bytes | None], Awaitable[tuple[int, bytes, Headers]]]

UI_DIR = Path(__file__).with_name("ui")
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
"""Every file of the page, with its content type."""
UI_HEADERS: Headers = [
    (
        b"content-security-policy",
        (
            b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            b"img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
        ),
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]
"""The key lives in the page's sessionStorage: no script but ours may run there."""


class Console:
    """The console's routes over a gateway's state (its live figures included).

    Args:
        state: What the gateway routes with (table, balancer, keys).
        policy: The gateway's ``scope -> key policy`` (raises 401 when auth is on and the key
            is missing or unknown).
    """

    def __init__(self, state: GatewayState, policy: Callable[[Scope], KeyPolicy]) -> None:
        self.state = state
        self._policy = policy
        self._assets = {name: _load(name, kind) for name, kind in ASSETS.items()}

    def routes(self) -> dict[str, Handler]:
        """GET routes to add to the gateway's table."""
        routes: dict[str, Handler] = {
            "/ui": self._redirect,
            "/ui/": self._asset_handler("index.html"),
            "/v1/console": self._view,
        }
        for name in ASSETS:
            routes[f"/ui/{name}"] = self._asset_handler(name)
        return routes

    async def _redirect(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        # relative, so the page also works behind a path prefix; its links are relative too
        return 308, b"", [(b"location", b"ui/")]

    def _asset_handler(self, name: str) -> Handler:
        body, headers, etag = self._assets[name]

        async def asset(scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
            if header(scope, b"if-none-match") == etag:
                return 304, b"", headers
            return 200, body, headers

        return asset

    async def _view(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        policy = self._policy(scope)
        allowed = self.state.catalog.allowed_for(policy)
        body = console_view(self.state, self.state.live, allowed, now=time.monotonic())
        body["key"] = policy.name if self.state.catalog.keys.enabled else None
        return 200, json.dumps(body).encode(), JSON


def _load(name: str, content_type: str) -> tuple[bytes, Headers, bytes]:
    body = (UI_DIR / name).read_bytes()
    etag = b'"' + hashlib.sha256(body).hexdigest()[:16].encode() + b'"'
    headers = [(b"content-type", content_type.encode()), (b"etag", etag), *UI_HEADERS]
    return body, headers, etag


def console_view(
    state: GatewayState, live: LiveFigures, allowed: Mapping[str, Route] | None, *, now: float
) -> dict[str, Any]:
    """``/v1/console``: every model ``allowed`` may see (``None``: all), as the page shows it.

    Args:
        allowed: What the caller's key may use (canonical model -> its route,
            :meth:`~.catalog.Catalog.allowed_for`); ``None``: everything.
    """
    table = state.catalog.table
    models = [
        _model_view(state, live, entry, table.routes[name], now=now)
        for name, entry in table.models.items()
        if allowed is None or name in allowed
    ]
    return {"object": "console", "auth": state.catalog.keys.enabled, "models": models}


def model_state(entry: ModelEntry, route: Route) -> str:
    """One word for the model: ``Ready``, ``Degraded`` (serving, short of backends or replicas),
    ``Unavailable`` (nothing to route to), or the InferenceModel's phase while it is not serving
    (``Pending``, ``Loading``, ``Failed``...)."""
    phases = [s.phase for s in entry.statuses]
    if route.backends:
        short = len(route.backends) < len(entry.backends) or "Degraded" in phases
        return "Degraded" if short else "Ready"
    return next((p for p in phases if p not in SERVING_PHASES), "Unavailable")


def _model_view(
    state: GatewayState, live: LiveFigures, entry: ModelEntry, route: Route, *, now: float
) -> dict[str, Any]:
    """One model's card on the console: its state, pools, InferenceModels, backends and live
    figures (this gateway's, with its peers' added)."""
    shared = state.peers.peers_live(entry.name) if state.peers is not None else ()
    backends = _backend_views(state, entry, route)
    return {
        "id": entry.name,
        "aliases": list(entry.aliases),
        "source": entry.source,
        "ready": bool(route.backends),
        "state": model_state(entry, route),
        "pools": _pool_views(entry, backends),
        "resources": [_resource_view(s) for s in entry.statuses],
        "backends": backends,
        "in_flight": sum(b["in_flight"] for b in backends),
        "live": live.figures(entry.name, now=now, peers=shared),
    }


def _backend_views(state: GatewayState, entry: ModelEntry, route: Route) -> list[dict[str, Any]]:
    """Each backend's pool, readiness and load, in the model's order of backends."""
    views = []
    for backend in entry.backends:
        load = state.balancer.state(backend.url)
        views.append(
            {
                "pool": backend.pool,
                "ready": backend in route.backends,
                "in_flight": load.outstanding,
                "errors": load.errors,
            }
        )
    return views


def _pool_views(entry: ModelEntry, backends: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ready and desired replicas per pool: as the operator counts them, or for a static
    model, its backends grouped by their pool label."""
    if entry.pools:
        return [
            {
                "name": p.name,
                "accelerator": p.accelerator,
                "engine": p.engine,
                "ready": p.ready_replicas,
                "desired": p.desired_replicas,
            }
            for p in entry.pools
        ]
    grouped: dict[str, list[bool]] = {}
    for b in backends:
        grouped.setdefault(b["pool"], []).append(b["ready"])
    return [
        {"name": name, "accelerator": None, "engine": None, "ready": sum(r), "desired": len(r)}
        for name, r in grouped.items()
    ]


def _resource_view(status: ResourceStatus) -> dict[str, Any]:
    """One InferenceModel behind the model: its phase, its time to ready by phase, and the
    conditions that do not hold (what the console shows as problems)."""
    return {
        "resource": status.resource,
        "phase": status.phase,
        "phase_since": status.phase_since,
        "time_to_ready": {**dict(status.time_to_ready), "total": status.ready_after_s},
        "problems": [
            {"type": c.type, "reason": c.reason, "message": c.message}
            for c in status.conditions
            if c.status != "True"
        ],
    }
