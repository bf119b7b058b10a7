"""One proxied request: pick a backend, retry connection failures, relay the answer.

JSON answers are relayed in one piece; SSE answers event by event as they arrive (whole events
only, :class:`~modelgrid_serving.sse.SSEReader`), with the first event timed (TTFT) and usage
read on the way. A client that disconnects cancels the request's
task (:meth:`~.exchange.Exchange.client_left`), which closes the upstream connection: the engine stops.
Connection failures before any byte are retried on another backend; after the first byte
nothing is retried, and a broken stream ends with one OpenAI error event and ``[DONE]``.
"""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus

from ..errors import (
    APIError,
    EngineError,
    Overloaded,
    UpstreamUnavailable,
    error_response,
    from_engine_error,
)
from ..sse import DONE_FRAME, EventTooLarge, SSEReader, data_frame, has_done, last_data_with
from .asgi import Send, header, send_body, send_error
from .balancer import Balancer
from .exchange import Exchange
from .metrics import GatewayMetrics
from .proxy import HOP_BY_HOP, event_usage, find_usage, model_renamer, rewrite_model
from .routing import Backend
from .upstream import BrokenResponse, ConnectFailed, ReadTimeout, Response, Upstream

logger = logging.getLogger(__name__)

GATEWAY_OWNED = (b"x-ratelimit", b"access-control-")
"""Prefixes of response headers a backend's answer never passes on: the gateway's own."""

UPSTREAM_SUFFIX = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}
"""Route label -> path under the backend's ``/v1``."""


class Relay:
    """Relays proxied requests: backend choice with retries, then the answer, JSON or SSE. One
    a process; what it sees of each request (pool, usage, TTFT) is written on its
    :class:`~.exchange.Exchange` for the sink.

    Args:
        upstream: The pooled client that reaches backends.
        balancer: Picks the backend and learns from each answer.
        metrics: In-flight, TTFT and upstream error series.
    """

    def __init__(self, upstream: Upstream, balancer: Balancer, metrics: GatewayMetrics) -> None:
        self.upstream, self.balancer, self.metrics = upstream, balancer, metrics

    async def run(
        self, x: Exchange, send: Send, backends: tuple[Backend, ...], retries: int
    ) -> int:
        """Send ``x`` to one of ``backends`` (trying ``retries`` others after a failed
        connection) and relay the answer to ``send``; returns the status."""
        balancer, metrics, extra = self.balancer, self.metrics, x.headers
        tried: list[str] = []
        attempts = retries + 1
        for attempt in range(attempts):
            backend = balancer.choose(backends, now=time.monotonic(), exclude=tried)
            if backend is None:
                break
            tried.append(backend.url)
            x.pool = backend.pool
            balancer.started(backend.url)
            in_flight = metrics.in_flight_for(x.model, backend.pool)
            in_flight.inc()
            try:
                sent = time.perf_counter()
                try:
                    resp = await self.upstream.post(
                        backend.url + UPSTREAM_SUFFIX[x.route],
                        _body_for(x, backend),
                        _headers_for(x, backend),
                    )
                except ReadTimeout:
                    metrics.upstream_errors_total.labels(x.model, backend.pool, "timeout").inc()
                    return await send_error(
                        send, EngineError("The model's backend did not answer in time."), extra
                    )
                except ConnectFailed as exc:
                    balancer.failed(backend.url, now=time.monotonic())
                    metrics.upstream_errors_total.labels(x.model, backend.pool, "connect").inc()
                    logger.warning("backend %s: %s; trying another", backend.url, exc)
                    continue
                if resp.status == 503 and attempt + 1 < attempts and len(tried) < len(backends):
                    # The backend cannot take requests now (its engine is gone or not ready) and
                    # has not processed this one: eject it like a refused connection and try
                    # another. Its fast 503s would otherwise look like a fast backend.
                    resp.close()
                    balancer.failed(backend.url, now=time.monotonic())
                    metrics.upstream_errors_total.labels(x.model, backend.pool, "unavailable").inc()
                    logger.warning("backend %s answered 503; trying another", backend.url)
                    continue
                balancer.responded(backend.url, time.perf_counter() - sent, now=time.monotonic())
                try:
                    return await self._relay(x, send, resp, backend)
                finally:
                    resp.close()  # a cancelled relay closes the connection: the backend stops
            finally:
                in_flight.dec()
                balancer.finished(backend.url, now=time.monotonic())
        if tried:
            exc: APIError = UpstreamUnavailable(
                f"No backend of the model '{x.model}' could be reached ({len(tried)} tried)."
            )
        else:
            exc = Overloaded(f"Every backend of the model '{x.model}' is at its in-flight limit.")
        return await send_error(send, exc, extra)

    async def _relay(self, x: Exchange, send: Send, resp: Response, backend: Backend) -> int:
        # the key's limits and CORS are the gateway's to say, never a backend's (mlx_lm.server
        # allows every origin: relayed, any page could read answers the gateway allows none)
        headers = [
            (k.lower(), v)
            for k, v in resp.raw_headers
            if k.lower() not in HOP_BY_HOP and not k.lower().startswith(GATEWAY_OWNED)
        ]
        extra = x.headers
        headers.extend(extra)
        streaming = resp.content_type == "text/event-stream"
        if resp.status >= 400:
            return await _relay_error(send, resp, headers)
        rename = None
        requested = x.payload["model"]
        if backend.upstream_model and backend.upstream_model != requested:
            rename = model_renamer(backend.upstream_model, requested)
        if not streaming:
            try:
                data = await resp.read()
            except (ReadTimeout, ConnectionError) as exc:
                failure = self._broke_off(x, backend, exc, "before its answer was complete")
                return await send_error(send, failure, extra)
            if rename is not None:
                data = rename(data)
            x.usage = find_usage(data)
            await send_body(send, resp.status, data, headers)
            return resp.status
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        reader = SSEReader()
        last = b""  # the last block with data: [DONE], a stream's last event, is in it
        try:
            async for chunk in resp.iter_chunks():
                block = reader.feed(chunk)
                if not block:
                    continue  # no event ended in this chunk
                # Each event of a block starts at its start or after a line end.
                events = block.count(b"\ndata:") + block.startswith(b"data:")
                if events:
                    if x.ttft_s is None:
                        x.ttft_s = time.perf_counter() - x.started
                        self.metrics.ttft_for(x.model, backend.pool).observe(x.ttft_s)
                    x.events += events
                    last = block
                if b'"usage"' in block:  # parsed from the last event that has the key
                    usage = event_usage(last_data_with(block, b'"usage"'))
                    if usage is not None:
                        x.usage = usage
                if rename is not None:
                    block = rename(block)
                await send({"type": "http.response.body", "body": block, "more_body": True})
            block = reader.finish()
            if block:  # a last event without its blank line: forwarded, not lost
                last = block if b"data:" in block else last
                await send({"type": "http.response.body", "body": block, "more_body": True})
            if not has_done(last):
                # A backend that frames by closing the connection (HTTP/1.0, as mlx_lm.server)
                # ends a killed stream like a finished one: only the missing [DONE] tells.
                raise BrokenResponse("the stream ended without [DONE]")
        except (ReadTimeout, ConnectionError, EventTooLarge) as exc:
            failure = self._broke_off(x, backend, exc, "mid-stream; the answer is incomplete")
            event = data_frame(json.dumps(error_response(failure).content())) + DONE_FRAME
            await send({"type": "http.response.body", "body": event.encode(), "more_body": False})
            return 502
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        x.events = max(0, x.events - 1)  # the [DONE] event carries no token
        return resp.status

    def _broke_off(
        self, x: Exchange, backend: Backend, exc: Exception, when: str
    ) -> UpstreamUnavailable:
        """Count and log a backend that broke off its answer; the error the client gets."""
        kind = "timeout" if isinstance(exc, ReadTimeout) else "stream"
        self.metrics.upstream_errors_total.labels(x.model, backend.pool, kind).inc()
        logger.warning("backend %s broke off its answer (%s): %r", backend.url, kind, exc)
        return UpstreamUnavailable(f"The backend of the model '{x.model}' failed {when}.")


def _body_for(x: Exchange, backend: Backend) -> bytes:
    if backend.upstream_model and backend.upstream_model != x.payload["model"]:
        return rewrite_model(x.body, x.payload, backend.upstream_model)
    return x.body


def _headers_for(x: Exchange, backend: Backend) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    request_id = header(x.scope, b"x-request-id")
    if request_id:
        headers.append((b"x-request-id", request_id))
    if backend.api_key:
        headers.append((b"authorization", b"Bearer " + backend.api_key.encode("latin-1")))
    return headers


async def _relay_error(send: Send, resp: Response, headers: list[tuple[bytes, bytes]]) -> int:
    """Upstream errors keep their status; a body that is not OpenAI's shape is reshaped."""
    data = await resp.read()
    try:
        parsed = json.loads(data)
        shaped = isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)
    except ValueError:
        parsed, shaped = None, False
    if shaped:
        await send_body(send, resp.status, data, headers)
        return resp.status
    message = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(message, str):
        message = data.decode("utf-8", "replace")[:500] or _reason(resp.status)
    keep = [(k, v) for k, v in headers if k != b"content-type"]
    return await send_error(send, from_engine_error(message, status_code=resp.status), keep)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "backend error"
