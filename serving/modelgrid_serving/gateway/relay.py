"""One proxied request: pick a backend, retry connection failures, relay the answer.

JSON answers are relayed in one piece; SSE answers event by event as they arrive (whole events
only, :class:`~modelgrid_serving.sse.SSEReader`), with the first event timed (TTFT) and usage
read on the way. A client that disconnects cancels the request's
task (:meth:`Relay.client_left`), which closes the upstream connection: the engine stops.
Connection failures before any byte are retried on another backend; after the first byte
nothing is retried, and a broken stream ends with one OpenAI error event and ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ..errors import (
    APIError,
    EngineError,
    Overloaded,
    UpstreamUnavailable,
    error_response,
    from_engine_error,
)
from ..sse import DONE, DONE_FRAME, EventTooLarge, SSEReader, data_frame, last_data_with
from .asgi import Receive, Scope, Send, header, send_body, send_error
from .metrics import NO_POOL
from .proxy import HOP_BY_HOP, event_usage, find_usage, model_renamer, rewrite_model
from .routing import Backend
from .upstream import BrokenResponse, ConnectFailed, ReadTimeout, Response

if TYPE_CHECKING:
    from .state import GatewayState

logger = logging.getLogger(__name__)

UPSTREAM_SUFFIX = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}
"""Route label -> path under the backend's ``/v1``."""
_DONE_TEXT = DONE.encode()


class Relay:
    """One proxied request after its checks: backend choice with retries, then the relay."""

    __slots__ = (
        "body",
        "client_gone",
        "done",
        "events",
        "extra",
        "model",
        "payload",
        "pool",
        "route",
        "scope",
        "send",
        "started",
        "state",
        "ttft_s",
        "usage",
    )

    def __init__(
        self,
        state: GatewayState,
        scope: Scope,
        send: Send,
        route: str,
        model: str,
        body: bytes,
        payload: dict[str, Any],
        extra: list[tuple[bytes, bytes]],
        started: float,
    ) -> None:
        self.state, self.scope, self.send, self.route, self.model = state, scope, send, route, model
        self.body, self.payload, self.extra, self.started = body, payload, extra, started
        self.client_gone = False
        self.done = False
        self.events = 0
        self.pool = NO_POOL
        """The pool of the backend that took the request (the last one tried)."""
        self.usage: tuple[int, int] | None = None
        self.ttft_s: float | None = None
        """Seconds from the request to the first streamed event (streams only)."""

    def client_left(self) -> None:
        """The client went away before its answer was complete. Its task is cancelled next (by
        the server, or :meth:`watch_disconnect`), which closes the upstream request: the engine
        stops generating for nobody."""
        if not self.done:
            self.client_gone = True

    async def watch_disconnect(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` once ``receive()`` says the client disconnected (for servers without
        the :data:`~.asgi.CANCEL_ON_DISCONNECT` extension)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.done:
            self.client_left()
            task.cancel()

    async def run(self, backends: tuple[Backend, ...]) -> int:
        """Send the request to one of ``backends`` and relay the answer; returns the status."""
        state = self.state
        upstream = state.upstream
        assert upstream is not None
        tried: list[str] = []
        attempts = state.limits.retries + 1
        for attempt in range(attempts):
            backend = state.balancer.choose(backends, now=time.monotonic(), exclude=tried)
            if backend is None:
                break
            tried.append(backend.url)
            self.pool = backend.pool
            state.balancer.started(backend.url)
            in_flight = state.metrics.in_flight_for(self.model, backend.pool)
            in_flight.inc()
            try:
                sent = time.perf_counter()
                try:
                    resp = await upstream.post(
                        backend.url + UPSTREAM_SUFFIX[self.route],
                        self._body_for(backend),
                        self._headers_for(backend),
                    )
                except ReadTimeout:
                    state.metrics.upstream_errors.labels(self.model, backend.pool, "timeout").inc()
                    return await send_error(
                        self.send,
                        EngineError("The model's backend did not answer in time."),
                        self.extra,
                    )
                except ConnectFailed as exc:
                    state.balancer.failed(backend.url, now=time.monotonic())
                    state.metrics.upstream_errors.labels(self.model, backend.pool, "connect").inc()
                    logger.warning("backend %s: %s; trying another", backend.url, exc)
                    continue
                if resp.status == 503 and attempt + 1 < attempts and len(tried) < len(backends):
                    # The backend cannot take requests now (its engine is gone or not ready) and
                    # has not processed this one: eject it like a refused connection and try
                    # another. Its fast 503s would otherwise look like a fast backend.
                    resp.close()
                    state.balancer.failed(backend.url, now=time.monotonic())
                    state.metrics.upstream_errors.labels(
                        self.model, backend.pool, "unavailable"
                    ).inc()
                    logger.warning("backend %s answered 503; trying another", backend.url)
                    continue
                state.balancer.responded(
                    backend.url, time.perf_counter() - sent, now=time.monotonic()
                )
                try:
                    return await self._relay(resp, backend)
                finally:
                    resp.close()  # a cancelled relay closes the connection: the backend stops
            finally:
                in_flight.dec()
                state.balancer.finished(backend.url, now=time.monotonic())
        if tried:
            exc: APIError = UpstreamUnavailable(
                f"No backend of the model '{self.model}' could be reached ({len(tried)} tried)."
            )
        else:
            exc = Overloaded(
                f"Every backend of the model '{self.model}' is at its in-flight limit."
            )
        return await send_error(self.send, exc, self.extra)

    def _body_for(self, backend: Backend) -> bytes:
        if backend.upstream_model and backend.upstream_model != self.payload["model"]:
            return rewrite_model(self.body, self.payload, backend.upstream_model)
        return self.body

    def _headers_for(self, backend: Backend) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json")]
        request_id = header(self.scope, b"x-request-id")
        if request_id:
            headers.append((b"x-request-id", request_id))
        if backend.api_key:
            headers.append((b"authorization", b"Bearer " + backend.api_key.encode("latin-1")))
        return headers

    async def _relay(self, resp: Response, backend: Backend) -> int:
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
            try:
                data = await resp.read()
            except (ReadTimeout, ConnectionError) as exc:
                failure = self._broke_off(backend, exc, "before its answer was complete")
                return await send_error(self.send, failure, self.extra)
            if rename is not None:
                data = rename(data)
            self.usage = find_usage(data)
            await send_body(self.send, resp.status, data, headers)
            return resp.status
        send = self.send
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        reader = SSEReader()
        saw_done = False
        try:
            async for chunk in resp.iter_chunks():
                block = reader.feed(chunk)
                if block:
                    saw_done = self._read_events(block, backend) or saw_done
                    if rename is not None:
                        block = rename(block)
                    await send({"type": "http.response.body", "body": block, "more_body": True})
            block = reader.finish()
            if block:  # an event without its blank line at the very end: forwarded, not lost
                saw_done = self._read_events(block, backend) or saw_done
                await send({"type": "http.response.body", "body": block, "more_body": True})
            if not saw_done:
                # A backend that frames by closing the connection (HTTP/1.0, as mlx_lm.server)
                # ends a killed stream like a finished one: only the missing [DONE] tells.
                raise BrokenResponse("the stream ended without [DONE]")
        except (ReadTimeout, ConnectionError, EventTooLarge) as exc:
            failure = self._broke_off(backend, exc, "mid-stream; the answer is incomplete")
            event = data_frame(json.dumps(error_response(failure).content())) + DONE_FRAME
            await send({"type": "http.response.body", "body": event.encode(), "more_body": False})
            return 502
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.events = max(0, self.events - 1)  # the [DONE] event carries no token
        return resp.status

    def _read_events(self, block: bytes, backend: Backend) -> bool:
        """Note what whole events say: the first one's time, how many carry data, the usage
        (from the last event with a ``usage`` key, parsed); True when ``[DONE]`` is among them."""
        # Each event of a block starts at its start or after a line end.
        events = block.count(b"\ndata:") + block.startswith(b"data:")
        if events:
            if self.ttft_s is None:
                self.ttft_s = time.perf_counter() - self.started
                self.state.metrics.ttft_for(self.model, backend.pool).observe(self.ttft_s)
            self.events += events
        if b'"usage"' in block:
            usage = event_usage(last_data_with(block, b'"usage"'))
            if usage is not None:
                self.usage = usage
        return _DONE_TEXT in block and last_data_with(block, _DONE_TEXT) == DONE

    def _broke_off(self, backend: Backend, exc: Exception, when: str) -> UpstreamUnavailable:
        """Count and log a backend that broke off its answer; the error the client gets."""
        kind = "timeout" if isinstance(exc, ReadTimeout) else "stream"
        self.state.metrics.upstream_errors.labels(self.model, backend.pool, kind).inc()
        logger.warning("backend %s broke off its answer (%s): %r", backend.url, kind, exc)
        return UpstreamUnavailable(f"The backend of the model '{self.model}' failed {when}.")

    async def _relay_error(self, resp: Response, headers: list[tuple[bytes, bytes]]) -> int:
        """Upstream errors keep their status; a body that is not OpenAI's shape is reshaped."""
        data = await resp.read()
        try:
            parsed = json.loads(data)
            shaped = isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)
        except ValueError:
            parsed, shaped = None, False
        if shaped:
            await send_body(self.send, resp.status, data, headers)
            return resp.status
        message = parsed.get("error") if isinstance(parsed, dict) else None
        if not isinstance(message, str):
            message = data.decode("utf-8", "replace")[:500] or _reason(resp.status)
        keep = [(k, v) for k, v in headers if k != b"content-type"]
        return await send_error(
            self.send, from_engine_error(message, status_code=resp.status), keep
        )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "backend error"
