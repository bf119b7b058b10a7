"""The gateway as a bare ASGI application (served by :mod:`.http_server` on uvloop).

No web framework: a dict of paths, one handler each. The proxy path checks the key, reads the
body (bounded in size, and by the server in time), reads ``model``, resolves it through the
key's allowlist (a model the key may not use is answered as an unknown one), holds the protocol
bounds (:mod:`.bounds`), keeps the backends that can serve all it asks for, on the pool it pins
if any (:mod:`.candidates`), admits it against the key's limits (reserving its tokens), picks a
backend (:mod:`.balancer`) and relays the answer through its pooled client (:mod:`.upstream`):
JSON in one piece, SSE chunk by chunk as it arrives (:mod:`.relay`); then reports the outcome to
the sink (:mod:`.sink`), which counts it and settles the reservation to the real usage. Nothing
here counts: every outcome, a refusal included, goes to the sink. A client that goes away
cancels the upstream request; a connection failure before any byte is retried on another
backend. Every error is OpenAI-shaped through
:func:`~modelgrid_serving.errors.error_response`. Metrics are served on a port of their own
(:class:`~.metrics.MetricsApp`), never here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from .. import __version__
from ..errors import APIError, MethodNotAllowed, PayloadTooLarge, RouteNotFound, Unauthorized
from .admin import ADMIN_PATH, MAX_BODY_BYTES, require_admin
from .asgi import (
    CANCEL_ON_DISCONNECT,
    JSON,
    Headers,
    Receive,
    Scope,
    Send,
    header,
    send_body,
    send_error,
)
from .auth import ANONYMOUS, KeyPolicy
from .bounds import check_bounds
from .candidates import POOL_HEADER_KEY, candidates, pinned_pool
from .console import Console
from .exchange import Exchange
from .gpu_info import gather_gpu_info
from .peers import USAGE_PATH
from .proxy import estimate_prompt_tokens, parse_body
from .routing import filter_listing
from .state import GatewayState

logger = logging.getLogger(__name__)

Handler = Callable[[Scope, bytes | None], Awaitable[tuple[int, bytes, Headers]]]
"""A GET route: ``(scope, path parameter) -> (status, body, headers)``."""

PROXY_ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/chat/completions": "chat",
    "/completions": "completions",
    "/embeddings": "embeddings",
}
"""Proxied paths (with and without ``/v1``, as some clients send) -> route label."""


class GatewayStarting(APIError):
    """503: the gateway has not heard from every model source yet (``/ready``)."""

    status_code = 503
    type = "service_unavailable"
    code = "starting"


class _ClientGone(Exception):
    """The client disconnected while we read its body."""


class Gateway:
    """The ASGI application over a :class:`~.state.GatewayState` (what the routes read).

    Args:
        state: the gateway's parts (catalog, limits, balancer, sink) and their services.
    """

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._get_routes: dict[str, Handler] = {
            "/": self._info,
            "/health": self._health,
            "/ready": self._ready,
            "/v1/stats": self._stats,
            "/v1/gpu/info": self._gpu_info,
            USAGE_PATH: self._peer_usage,
            "/v1/peers": self._peers,
            "/v1/models": self._list_models,
            "/models": self._list_models,
        }
        self.console = Console(state, self._policy)
        self._get_routes.update(self.console.routes())

    # ---- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # the state starts and stops with the server (.server)
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        route = PROXY_ROUTES.get(path)
        if route is not None:
            if method != "POST":
                await send_error(
                    send, MethodNotAllowed(f"{method} {path}: use POST."), [(b"allow", b"POST")]
                )
                return
            await self._proxy(scope, receive, send, route)
            return
        if path == ADMIN_PATH or path.startswith(ADMIN_PATH + "/"):
            await self._admin(scope, receive, send, path[len(ADMIN_PATH) + 1 :])
            return
        handler = self._get_routes.get(path)
        model_id: str | None = None
        if handler is None:
            for prefix in ("/v1/models/", "/models/"):
                if path.startswith(prefix) and len(path) > len(prefix):
                    handler, model_id = self._get_model, path[len(prefix) :]
                    break
        if handler is None:
            await send_error(send, RouteNotFound(f"No route {method} {path}."))
            return
        if method not in ("GET", "HEAD"):
            await send_error(
                send, MethodNotAllowed(f"{method} {path}: use GET."), [(b"allow", b"GET")]
            )
            return
        try:
            status, body, headers = await handler(scope, model_id.encode() if model_id else None)
        except APIError as exc:
            await send_error(send, exc)
            return
        except Exception as exc:  # our bug: a 500 in OpenAI's shape, logged
            logger.exception("%s %s failed", method, path)
            await send_error(send, exc)
            return
        await send_body(send, status, body, headers)  # HEAD: the server sends the head only

    # ---- GET routes -----------------------------------------------------------------------

    def _policy(self, scope: Scope) -> KeyPolicy:
        keys = self.state.catalog.keys
        if not keys.enabled:
            return ANONYMOUS
        return keys.authenticate(header(scope, b"authorization"))

    async def _info(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        """Who we are; the models only to a valid key (those it may use), not to anyone."""
        body: dict[str, object] = {
            "name": "modelgrid",
            "role": "gateway",
            "version": __version__,
            "endpoints": sorted(
                {*PROXY_ROUTES, *self._get_routes, "/v1/models/{id}", *self._admin_routes()}
            ),
            "auth": self.state.catalog.keys.enabled,
        }
        try:
            allowed = self.state.catalog.allowed_for(self._policy(scope))
        except Unauthorized:
            allowed = {}
        table = self.state.catalog.table
        body["models"] = [
            n
            for n in table.cards
            if allowed is None
            or ((r := allowed.get(table.routes[n].model)) is not None and r.backends)
        ]
        return 200, json.dumps(body).encode(), JSON

    def _admin_routes(self) -> tuple[str, ...]:
        return (ADMIN_PATH, f"{ADMIN_PATH}/{{id}}") if self.state.admin is not None else ()

    async def _health(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        return 200, b'{"status":"ok"}', JSON

    async def _ready(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        if self.state.catalog.pending_sources:
            pending = ", ".join(sorted(self.state.catalog.pending_sources))
            raise GatewayStarting(f"Waiting for the first listing of: {pending}.")
        return 200, b'{"status":"ok"}', JSON

    async def _list_models(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        catalog = self.state.catalog
        allowed = catalog.allowed_for(self._policy(scope))
        body = catalog.table.listing if allowed is None else filter_listing(catalog.table, allowed)
        return 200, body, JSON

    async def _get_model(self, scope: Scope, model_id: bytes | None) -> tuple[int, bytes, Headers]:
        catalog = self.state.catalog
        allowed = catalog.allowed_for(self._policy(scope))
        requested = (model_id or b"").decode()
        table = catalog.table
        table.resolve(requested, allowed)  # 404 unknown or not allowed, 503 not ready
        return 200, table.cards[requested], JSON

    async def _stats(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        allowed = self.state.catalog.allowed_for(self._policy(scope))
        return 200, json.dumps(self.state.stats.render(allowed)).encode(), JSON

    async def _gpu_info(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        catalog = self.state.catalog
        allowed = catalog.allowed_for(self._policy(scope))
        assert self.state.session is not None
        body = await gather_gpu_info(self.state.session, catalog.table, allowed)
        return 200, json.dumps(body).encode(), JSON

    async def _peer_usage(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        peers = self.state.peers
        if peers is None:
            raise RouteNotFound(f"No route GET {USAGE_PATH}: no peers are configured.")
        if not peers.authorized(header(scope, b"authorization")):
            raise Unauthorized("Peer usage needs the gateways' shared peer secret.")
        return 200, json.dumps(peers.usage_body()).encode(), JSON

    async def _peers(self, scope: Scope, _: bytes | None) -> tuple[int, bytes, Headers]:
        """The gateways this one shares key limits with: their addresses (the cluster's pod
        IPs) are for operators, so with auth on only a key of scope ``admin`` sees them."""
        policy = self._policy(scope)
        if self.state.catalog.keys.enabled:
            require_admin(policy)
        peers = self.state.peers
        if peers is None:
            return 200, b'{"object":"list","instance":null,"data":[]}', JSON
        return 200, json.dumps(peers.peers_body(time.time())).encode(), JSON

    # ---- the admin API (.admin) -------------------------------------------------------------

    async def _admin(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """``/v1/admin/models`` (GET: list, POST: load) and ``/v1/admin/models/{name}`` (GET,
        DELETE: unload). 404 when the admin API is off, 401 without a known key, 403 without
        scope ``admin``: in that order, so that nobody learns more than the key may know."""
        admin = self.state.admin
        method: str = scope["method"]
        allowed = ("GET", "HEAD", "DELETE") if name else ("GET", "HEAD", "POST")
        try:
            if admin is None:
                raise RouteNotFound(f"No route {method} {scope['path']}: the admin API is off.")
            policy = self._policy(scope)
            require_admin(policy)
            if method not in allowed:
                allow = ", ".join(m for m in allowed if m != "HEAD")
                await send_error(
                    send,
                    MethodNotAllowed(f"{method} {scope['path']}: use {allow}."),
                    [(b"allow", allow.encode())],
                )
                return
            headers = list(JSON)
            if method == "POST":
                body = await self._read_body(scope, receive, limit=MAX_BODY_BYTES)
                status, answer = 202, await admin.load(body, policy)
                headers.append((b"location", f"{ADMIN_PATH}/{answer['name']}".encode()))
            elif method == "DELETE":
                status, answer = 202, await admin.unload(name, policy)
            elif name:
                status, answer = 200, await admin.show(name)
            else:
                status, answer = 200, await admin.listing()
        except _ClientGone:
            return
        except APIError as exc:
            await send_error(send, exc)
            return
        except Exception as exc:  # our bug: a 500 in OpenAI's shape, logged
            logger.exception("%s %s failed", method, scope["path"])
            await send_error(send, exc)
            return
        await send_body(send, status, json.dumps(answer).encode(), headers)

    # ---- the proxy --------------------------------------------------------------------------

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, route_label: str) -> None:
        """Check, admit, relay; every outcome is reported to the sink, which does the counting."""
        started = time.perf_counter()
        state = self.state
        sink = state.sink
        model = "-"
        policy = ANONYMOUS
        reserved = 0
        try:
            policy = self._policy(scope)
            body = await self._read_body(scope, receive)
            payload = parse_body(body)
            catalog, limits, limiter = state.catalog, state.limits, state.limiter
            route = catalog.table.resolve(payload.get("model"), catalog.allowed_for(policy))
            model = route.model
            max_tokens = check_bounds(payload, route_label, route, limits)
            backends = route.backends
            pinned = header(scope, POOL_HEADER_KEY)
            if pinned is not None or route.lacking:  # else no filter could change a thing
                pool = None if pinned is None else pinned_pool(pinned, policy, state.config.routing)
                backends = candidates(route, route_label, payload, pool)
            if policy.tokens_per_minute:
                answer = max_tokens or limits.reserve_completion_tokens
                reserved = limiter.reservation(policy, estimate_prompt_tokens(body) + answer)
            rl_headers = limiter.admit(policy, now=time.monotonic(), reserve=reserved)
        except _ClientGone:
            sink.refused(model, route_label, 499)
            return
        except APIError as exc:
            sink.rejected(policy, exc)
            sink.refused(model, route_label, await send_error(send, exc))
            return
        except Exception as exc:  # our bug: a 500 in OpenAI's shape, logged
            logger.exception("%s checks failed", route_label)
            await send_error(send, exc)
            sink.refused(model, route_label, 500)
            return

        extra = [(k.encode(), v.encode()) for k, v in rl_headers.items()]
        x = Exchange(scope, route_label, model, body, payload, extra, policy, reserved, started)
        status: int | None = None
        try:
            watcher = None
            cancel_on_disconnect = scope.get("extensions", {}).get(CANCEL_ON_DISCONNECT)
            if cancel_on_disconnect is not None:
                cancel_on_disconnect(x.client_left)
            else:
                task = asyncio.current_task()
                assert task is not None
                watcher = asyncio.create_task(x.watch_disconnect(receive, task))
            try:
                status = await state.relay.run(x, send, backends, limits.retries)
            except asyncio.CancelledError:
                if not x.client_gone:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                status = 499
            finally:
                x.done = True
                if watcher is not None:
                    watcher.cancel()
        finally:
            sink.finished(x, status)

    async def _read_body(self, scope: Scope, receive: Receive, limit: int | None = None) -> bytes:
        limit = min(limit or self.state.limits.max_body_bytes, self.state.limits.max_body_bytes)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
