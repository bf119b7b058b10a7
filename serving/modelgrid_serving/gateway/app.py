"""The gateway as a bare ASGI application (run by uvicorn with httptools and uvloop).

No web framework: a dict of paths, one handler each. The proxy path reads the body (bounded),
reads ``model``, resolves it in the current routing table, checks key, allowlist and limits,
picks a backend (:mod:`.balancer`) and relays the answer through a pooled aiohttp client: JSON
in one piece, SSE chunk by chunk as it arrives. A client that goes away cancels the upstream
request; a connection failure before any byte is retried on another backend. Every error is
OpenAI-shaped through :func:`~modelgrid_serving.errors.error_response`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import aiohttp

from .. import __version__
from ..errors import (
    APIError,
    EngineError,
    MethodNotAllowed,
    Overloaded,
    PayloadTooLarge,
    RouteNotFound,
    UpstreamUnavailable,
    error_response,
    from_engine_error,
)
from .auth import ANONYMOUS, KeyPolicy, KeyRing, authorize
from .balancer import Balancer
from .config import GatewayConfig, KeyConfig, load_config, load_keys
from .limits import RateLimiter
from .metrics import CONTENT_TYPE, GatewayMetrics
from .proxy import (
    HOP_BY_HOP,
    estimate_prompt_tokens,
    find_usage,
    model_renamer,
    parse_body,
    rewrite_model,
)
from .routing import Backend, ModelEntry, RoutingTable, allowed_models, build_table, filter_listing
from .sources import entries_from_inferencemodels, keys_from_secret, static_entries

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PROXY_ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/chat/completions": "chat",
    "/completions": "completions",
    "/embeddings": "embeddings",
}
"""Proxied paths (with and without ``/v1``, as some clients send) -> route label."""
_UPSTREAM_SUFFIX = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}
_JSON = [(b"content-type", b"application/json")]
_DONE = b"data: [DONE]\n\n"


class GatewayStarting(APIError):
    """503: the gateway has not heard from every model source yet (``/ready``)."""

    status_code = 503
    type = "service_unavailable"
    code = "starting"


class _ClientGone(Exception):
    """The client disconnected while we read its body."""


@dataclass(slots=True)
class ModelCounters:
    """What ``/v1/stats`` reports per model."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Gateway:
    """The ASGI application.

    Args:
        config: The static configuration (models, keys, limits).
        config_path: The file it came from; watched for changes (static models and keys).
        kubernetes: Also route to InferenceModels found by a Kubernetes watch.
        namespace: Watch this namespace only (``None``: all); also where the keys Secret lives.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        config_path: Path | None = None,
        kubernetes: bool = False,
        namespace: str | None = None,
    ) -> None:
        self.config = config
        self.limits = config.limits
        self._config_path = config_path
        self._kubernetes = kubernetes
        self._namespace = namespace
        self.metrics = GatewayMetrics()
        self.balancer = Balancer(max_in_flight=config.limits.max_in_flight_per_backend)
        self.limiter = RateLimiter()
        self.keys = KeyRing((), enabled=config.auth.enabled)
        self.table = RoutingTable()
        self.counters: dict[str, ModelCounters] = {}
        self._entries: dict[str, list[ModelEntry]] = {}
        self._down: set[str] = set()
        self._key_sources: dict[str, list[KeyConfig]] = {}
        self._allowed: dict[str, frozenset[str] | None] = {}
        self._pending_sources: set[str] = set()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[Any] = []
        self._started = time.time()
        self._get_routes: dict[
            str,
            Callable[
                [Scope, bytes | None], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]
            ],
        ] = {
            "/": self._info,
            "/health": self._health,
            "/ready": self._ready,
            "/metrics": self._metrics,
            "/v1/stats": self._stats,
            "/v1/models": self._list_models,
            "/models": self._list_models,
        }
        self._apply_static(config)

    # ---- table and key updates -----------------------------------------------------------

    def _apply_static(self, config: GatewayConfig) -> None:
        self.config = config
        self._entries["static"] = static_entries(config, created=int(self._started))
        self._set_keys("inline", list(config.auth.keys))
        if config.auth.keys_file is not None:
            try:
                self._set_keys("file", load_keys(config.auth.keys_file.read_text()))
            except Exception as exc:  # noqa: BLE001 - keep the previous keys, say why
                logger.error(
                    "keys file %s: %s; keeping the previous keys", config.auth.keys_file, exc
                )
        self._rebuild()

    def set_entries(self, source: str, entries: list[ModelEntry]) -> None:
        """Replace one source's models and rebuild the table (event loop thread only)."""
        self._entries[source] = entries
        self._pending_sources.discard(source)
        self._rebuild()

    def _set_keys(self, source: str, keys: list[KeyConfig]) -> None:
        self._key_sources[source] = keys
        self._pending_sources.discard(source)
        self.keys = KeyRing(chain(*self._key_sources.values()), enabled=self.config.auth.enabled)
        self._allowed.clear()

    def _rebuild(self) -> None:
        table = build_table(chain(*self._entries.values()), down=frozenset(self._down))
        self.table = table
        self._allowed.clear()
        urls = {b.url for e in table.models.values() for b in e.backends}
        self.balancer.forget(urls)
        for name, route in table.routes.items():
            if name == route.model:
                self.metrics.backends_ready.labels(name).set(len(route.backends))

    def _allowed_for(self, policy: KeyPolicy) -> frozenset[str] | None:
        if policy.models is None:
            return None
        allowed = self._allowed.get(policy.name)
        if allowed is None:
            allowed = self._allowed[policy.name] = allowed_models(self.table, policy.models)
        return allowed

    # ---- lifespan -------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open the client pool, start the sources, the health probe and the file watch."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=10),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.limits.connect_timeout_s,
                sock_read=self.limits.read_timeout_s,
            ),
        )
        loop = asyncio.get_running_loop()
        if self._kubernetes:
            self._start_kubernetes(loop)
        if self.limits.health_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._probe_loop()))
        if self._config_path is not None:
            self._tasks.append(asyncio.create_task(self._watch_files()))

    def _start_kubernetes(self, loop: asyncio.AbstractEventLoop) -> None:
        from .sources import current_namespace, kubernetes_watchers

        auth = self.config.auth
        secret = None
        if auth.secret_name:
            secret = (self._namespace or current_namespace(), auth.secret_name)
            self._pending_sources.add("secret")
        self._pending_sources.add("kubernetes")

        def on_models(objs: list[dict[str, Any]]) -> None:
            entries = entries_from_inferencemodels(objs)  # parse in the thread, swap in the loop
            loop.call_soon_threadsafe(self.set_entries, "kubernetes", entries)

        def on_secret(objs: list[dict[str, Any]]) -> None:
            try:
                keys = [k for o in objs for k in keys_from_secret(o, auth.secret_key)]
            except Exception as exc:  # noqa: BLE001 - a bad Secret must not stop the watch
                logger.error("keys Secret: %s; keeping the previous keys", exc)
                return
            loop.call_soon_threadsafe(self._set_keys, "secret", keys)

        self._watchers = kubernetes_watchers(
            namespace=self._namespace, on_models=on_models, secret=secret, on_secret=on_secret
        )
        for watcher in self._watchers:
            watcher.start()

    async def shutdown(self) -> None:
        """Stop everything ``startup`` started."""
        for watcher in self._watchers:
            watcher.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _probe_loop(self) -> None:
        """Probe every static backend's ``/health``; a failing one leaves the table until it
        answers again (its model answers 503 when it has no other)."""
        assert self._session is not None
        interval = self.limits.health_interval_s
        timeout = aiohttp.ClientTimeout(total=max(0.5, min(interval, 2.0)))

        async def probe(url: str) -> bool:
            root = url.removesuffix("/v1")
            try:
                async with self._session.get(root + "/health", timeout=timeout) as resp:  # type: ignore[union-attr]
                    return resp.status == 200
            except (TimeoutError, aiohttp.ClientError):
                return False

        while True:
            urls = sorted({b.url for e in self._entries.get("static", []) for b in e.backends})
            results = await asyncio.gather(*(probe(u) for u in urls))
            down = {u for u, ok in zip(urls, results, strict=True) if not ok}
            if down != self._down:
                for url in down - self._down:
                    logger.warning("backend %s is down (health probe)", url)
                for url in self._down - down:
                    logger.info("backend %s is up again", url)
                self._down = down
                self._rebuild()
            await asyncio.sleep(interval)

    async def _watch_files(self) -> None:
        """Reload the config file (and the keys file) when they change."""

        def stamp() -> tuple[float, ...]:
            paths = [self._config_path, self.config.auth.keys_file]
            return tuple(p.stat().st_mtime if p and p.exists() else 0.0 for p in paths)

        seen = stamp()
        while True:
            await asyncio.sleep(1.0)
            now = stamp()
            if now == seen:
                continue
            seen = now
            try:
                config = load_config(self._config_path)
            except Exception as exc:  # noqa: BLE001 - keep serving the last good config
                logger.error("config %s: %s; keeping the previous config", self._config_path, exc)
                continue
            self.limits = config.limits.model_copy(
                update={"max_in_flight_per_backend": self.limits.max_in_flight_per_backend}
            )
            self._apply_static(config)
            logger.info("config reloaded: %d static models", len(config.models))

    # ---- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - report it to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        route = PROXY_ROUTES.get(path)
        if route is not None:
            if method != "POST":
                await self._error(
                    send, MethodNotAllowed(f"{method} {path}: use POST."), [(b"allow", b"POST")]
                )
                return
            await self._proxy(scope, receive, send, route)
            return
        handler = self._get_routes.get(path)
        model_id: str | None = None
        if handler is None:
            for prefix in ("/v1/models/", "/models/"):
                if path.startswith(prefix) and len(path) > len(prefix):
                    handler, model_id = self._get_model, path[len(prefix) :]
                    break
        if handler is None:
            await self._error(send, RouteNotFound(f"No route {method} {path}."))
            return
        if method not in ("GET", "HEAD"):
            await self._error(
                send, MethodNotAllowed(f"{method} {path}: use GET."), [(b"allow", b"GET")]
            )
            return
        try:
            status, body, headers = await handler(scope, model_id.encode() if model_id else None)
        except APIError as exc:
            await self._error(send, exc)
            return
        await _send(send, status, body if method == "GET" else b"", headers)

    async def _error(
        self, send: Send, exc: BaseException, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> int:
        reply = error_response(exc)
        out = [
            *_JSON,
            *headers,
            *((k.lower().encode(), v.encode()) for k, v in reply.headers.items()),
        ]
        await _send(send, reply.status_code, json.dumps(reply.content()).encode(), out)
        return reply.status_code

    # ---- GET routes -----------------------------------------------------------------------

    def _policy(self, scope: Scope) -> KeyPolicy:
        if not self.keys.enabled:
            return ANONYMOUS
        return self.keys.authenticate(_header(scope, b"authorization"))

    async def _info(
        self, scope: Scope, _: bytes | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        body = {
            "name": "modelgrid",
            "role": "gateway",
            "version": __version__,
            "models": [n for n in self.table.cards],
            "endpoints": sorted({*PROXY_ROUTES, *self._get_routes, "/v1/models/{id}"}),
            "auth": self.keys.enabled,
        }
        return 200, json.dumps(body).encode(), _JSON

    async def _health(
        self, scope: Scope, _: bytes | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        return 200, b'{"status":"ok"}', _JSON

    async def _ready(
        self, scope: Scope, _: bytes | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if self._pending_sources:
            raise GatewayStarting(
                f"Waiting for the first listing of: {', '.join(sorted(self._pending_sources))}."
            )
        return 200, b'{"status":"ok"}', _JSON

    async def _metrics(
        self, scope: Scope, _: bytes | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        return 200, self.metrics.render(), [(b"content-type", CONTENT_TYPE.encode())]

    async def _list_models(
        self, scope: Scope, _: bytes | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        policy = self._policy(scope)
        allowed = self._allowed_for(policy)
        body = self.table.listing if allowed is None else filter_listing(self.table, allowed)
        return 200, body, _JSON

    async def _get_model(
        self, scope: Scope, model_id: bytes | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        policy = self._policy(scope)
        requested = (model_id or b"").decode()
        route = self.table.resolve(requested)  # 404 unknown, 503 not ready
        authorize(policy, self._allowed_for(policy), route.model)
        return 200, self.table.cards[requested], _JSON

    async def _stats(
        self, scope: Scope, _: bytes | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        self._policy(scope)
        return 200, json.dumps(self.stats()).encode(), _JSON

    def stats(self) -> dict[str, Any]:
        """``/v1/stats``: per model, its pools, backends, load and what it served."""
        models = []
        for name, entry in self.table.models.items():
            route = self.table.routes[name]
            counters = self.counters.get(name, ModelCounters())
            backends = []
            for i, backend in enumerate(entry.backends):
                state = self.balancer.state(backend.url)
                backends.append(
                    {
                        "backend": f"{backend.pool}/{i}",
                        "ready": backend in route.backends,
                        "in_flight": state.outstanding,
                        "ewma_latency_ms": round(state.ewma_s * 1000, 3),
                        "requests": state.requests,
                        "errors": state.errors,
                    }
                )
            models.append(
                {
                    "id": name,
                    "aliases": list(entry.aliases),
                    "source": entry.source,
                    "ready": bool(route.backends),
                    "pools": [
                        {
                            "name": p.name,
                            "accelerator": p.accelerator,
                            "engine": p.engine,
                            "ready_replicas": p.ready_replicas,
                            "desired_replicas": p.desired_replicas,
                        }
                        for p in entry.pools
                    ],
                    "ready_replicas": sum(p.ready_replicas for p in entry.pools)
                    if entry.pools
                    else len(route.backends),
                    "backends": backends,
                    "in_flight": sum(b["in_flight"] for b in backends),
                    "requests": counters.requests,
                    "tokens": {
                        "prompt": counters.prompt_tokens,
                        "completion": counters.completion_tokens,
                        "total": counters.prompt_tokens + counters.completion_tokens,
                    },
                }
            )
        return {
            "object": "stats",
            "uptime_s": round(time.time() - self._started, 1),
            "in_flight": sum(m["in_flight"] for m in models),
            "models": models,
        }

    # ---- the proxy --------------------------------------------------------------------------

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, route_label: str) -> None:
        started = time.perf_counter()
        model = "-"
        rl_headers: dict[str, str] = {}
        try:
            policy = self._policy(scope)
            body = await self._read_body(scope, receive)
            payload = parse_body(body)
            route = self.table.resolve(payload.get("model"))
            model = route.model
            authorize(policy, self._allowed_for(policy), model)
            rl_headers = self.limiter.admit(policy, now=time.monotonic())
        except _ClientGone:
            self.metrics.requests.labels(model, route_label, "499").inc()
            return
        except APIError as exc:
            if exc.status_code == 429:
                self.metrics.rate_limited.labels(policy.name, exc.type).inc()
            self.metrics.rejected.labels(exc.code or exc.type).inc()
            status = await self._error(send, exc)
            self.metrics.requests.labels(model, route_label, str(status)).inc()
            return

        extra = [(k.encode(), v.encode()) for k, v in rl_headers.items()]
        call = _Call(self, scope, send, route_label, model, body, payload, extra, started)
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(call.watch_disconnect(receive, task))
        try:
            status = await call.run(route.backends)
        except asyncio.CancelledError:
            if not call.client_gone:
                raise
            task.uncancel()
            status = 499
        finally:
            call.done = True
            watcher.cancel()
        self.metrics.requests.labels(model, route_label, str(status)).inc()
        self.metrics.duration.labels(model, route_label).observe(time.perf_counter() - started)
        counters = self.counters.get(model)
        if counters is None:
            counters = self.counters[model] = ModelCounters()
        counters.requests += 1
        prompt, completion = call.usage or (estimate_prompt_tokens(body), call.events)
        counters.prompt_tokens += prompt
        counters.completion_tokens += completion
        self.metrics.tokens.labels(model, "prompt").inc(prompt)
        self.metrics.tokens.labels(model, "completion").inc(completion)
        self.limiter.charge(policy, prompt + completion, now=time.monotonic())

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.limits.max_body_bytes
        declared = _header(scope, b"content-length")
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


class _Call:
    """One proxied request: backend choice with retries, then the relay."""

    __slots__ = (
        "body",
        "client_gone",
        "done",
        "events",
        "extra",
        "gw",
        "model",
        "payload",
        "route",
        "scope",
        "send",
        "started",
        "usage",
    )

    def __init__(
        self,
        gw: Gateway,
        scope: Scope,
        send: Send,
        route: str,
        model: str,
        body: bytes,
        payload: dict[str, Any],
        extra: list[tuple[bytes, bytes]],
        started: float,
    ) -> None:
        self.gw, self.scope, self.send, self.route, self.model = gw, scope, send, route, model
        self.body, self.payload, self.extra, self.started = body, payload, extra, started
        self.client_gone = False
        self.done = False
        self.events = 0
        self.usage: tuple[int, int] | None = None

    async def watch_disconnect(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        """Cancel the request's task when its client disconnects (closing the upstream)."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.done:
                    self.client_gone = True
                    task.cancel()
                return

    async def run(self, backends: tuple[Backend, ...]) -> int:
        gw = self.gw
        session = gw._session
        assert session is not None
        tried: list[str] = []
        for _ in range(gw.limits.retries + 1):
            backend = gw.balancer.choose(backends, now=time.monotonic(), exclude=tried)
            if backend is None:
                break
            tried.append(backend.url)
            gw.balancer.started(backend.url)
            in_flight = gw.metrics.in_flight.labels(self.model, backend.pool)
            in_flight.inc()
            try:
                sent = time.perf_counter()
                try:
                    resp = await session.post(
                        backend.url + _UPSTREAM_SUFFIX[self.route],
                        data=self._body_for(backend),
                        headers=self._headers_for(backend),
                    )
                except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                    if isinstance(exc, aiohttp.SocketTimeoutError):
                        gw.metrics.upstream_errors.labels(self.model, backend.pool, "timeout").inc()
                        return await gw._error(
                            self.send,
                            EngineError("The model's backend did not answer in time."),
                            self.extra,
                        )
                    gw.balancer.failed(backend.url, now=time.monotonic())
                    gw.metrics.upstream_errors.labels(self.model, backend.pool, "connect").inc()
                    logger.warning("backend %s: %s; trying another", backend.url, exc)
                    continue
                gw.balancer.responded(backend.url, time.perf_counter() - sent, now=time.monotonic())
                try:
                    return await self._relay(resp, backend)
                finally:
                    resp.close()  # a cancelled relay closes the connection: the backend stops
            finally:
                in_flight.dec()
                gw.balancer.finished(backend.url, now=time.monotonic())
        if tried:
            exc: APIError = UpstreamUnavailable(
                f"No backend of the model '{self.model}' could be reached ({len(tried)} tried)."
            )
        else:
            exc = Overloaded(
                f"Every backend of the model '{self.model}' is at its in-flight limit."
            )
        return await gw._error(self.send, exc, self.extra)

    def _body_for(self, backend: Backend) -> bytes:
        if backend.upstream_model and backend.upstream_model != self.payload["model"]:
            return rewrite_model(self.body, self.payload, backend.upstream_model)
        return self.body

    def _headers_for(self, backend: Backend) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        request_id = _header(self.scope, b"x-request-id")
        if request_id:
            headers["x-request-id"] = request_id.decode("latin-1")
        if backend.api_key:
            headers["authorization"] = f"Bearer {backend.api_key}"
        return headers

    async def _relay(self, resp: aiohttp.ClientResponse, backend: Backend) -> int:
        headers = [
            (k.lower(), v)
            for k, v in resp.raw_headers
            if k.lower() not in HOP_BY_HOP and not k.lower().startswith(b"x-ratelimit")
        ]
        headers.extend(self.extra)
        streaming = resp.content_type == "text/event-stream"
        if resp.status >= 400:
            return await self._relay_error(resp, headers)
        rename = None
        requested = self.payload["model"]
        if backend.upstream_model and backend.upstream_model != requested:
            rename = model_renamer(backend.upstream_model, requested)
        if not streaming:
            data = await resp.read()
            if rename is not None:
                data = rename(data)
            self.usage = find_usage(data)
            await _send(self.send, resp.status, data, headers)
            return resp.status
        send = self.send
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        first = True
        tail = b""
        try:
            async for chunk in resp.content.iter_any():
                tail = tail[-16:] + chunk[-16:] if len(chunk) < 16 else chunk[-16:]
                if b"data:" in chunk:
                    if first:
                        first = False
                        self.gw.metrics.ttft.labels(self.model).observe(
                            time.perf_counter() - self.started
                        )
                    self.events += chunk.count(b"data:")
                    usage = find_usage(chunk)
                    if usage is not None:
                        self.usage = usage
                    if rename is not None:
                        chunk = rename(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if b"[DONE]" not in tail:
                # A backend that frames by closing the connection (HTTP/1.0, as mlx_lm.server)
                # ends a killed stream like a finished one: only the missing [DONE] tells.
                raise aiohttp.ClientPayloadError("the stream ended without [DONE]")
        except (TimeoutError, aiohttp.ClientError) as exc:
            kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else "stream"
            self.gw.metrics.upstream_errors.labels(self.model, backend.pool, kind).inc()
            logger.warning("backend %s broke a stream: %r", backend.url, exc)
            failure = UpstreamUnavailable(
                f"The backend of the model '{self.model}' failed mid-stream; the answer is incomplete."
            )
            event = b"data: " + json.dumps(error_response(failure).content()).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": event + _DONE, "more_body": False})
            return 502
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.events = max(0, self.events - 1)  # the [DONE] event carries no token
        return resp.status

    async def _relay_error(
        self, resp: aiohttp.ClientResponse, headers: list[tuple[bytes, bytes]]
    ) -> int:
        """Upstream errors keep their status; a body that is not OpenAI's shape is reshaped."""
        data = await resp.read()
        try:
            parsed = json.loads(data)
            shaped = isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)
        except ValueError:
            parsed, shaped = None, False
        if shaped:
            await _send(self.send, resp.status, data, headers)
            return resp.status
        message = parsed.get("error") if isinstance(parsed, dict) else None
        if not isinstance(message, str):
            message = data.decode("utf-8", "replace")[:500] or resp.reason or "backend error"
        keep = [(k, v) for k, v in headers if k != b"content-type"]
        return await self.gw._error(
            self.send, from_engine_error(message, status_code=resp.status), keep
        )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def _send(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> None:
    out = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})
