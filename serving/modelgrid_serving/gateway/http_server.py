"""The gateway's HTTP/1.1 server: a lean ASGI server for one application, on httptools.

Why not uvicorn: measured (``bench/RESULTS.md``, "Gateway"), the whole gateway serves 7-17% more
requests per CPU-second on this server, with a lower added latency, mostly because the server
tells the application that a client left by a callback (:data:`~.asgi.CANCEL_ON_DISCONNECT`)
instead of the application keeping a task per request blocked on ``receive()``. With the same
minimal proxy on both, the two are on par up to 8 clients; at 32 this one serves 1.2x the
requests per CPU-second with a third of uvicorn's added p99 (head and body in one write, no
``asyncio.Event`` and no keep-alive timer per request).

It does what the gateway needs of HTTP/1.1:

- keep-alive, and pipelined requests answered in order (reading pauses while one waits);
- request bodies by ``content-length`` or chunked, handed to the application as they arrive,
  reading paused while more than 64 KiB waits unread; ``Expect: 100-continue`` answered when the
  application first asks for the body (so a 413 decided from the headers never invites it);
  a body must arrive whole within ``body_timeout_s`` and, from its fifth second on, at no less
  than ``min_body_rate_bytes_s`` on average (else 408, checked by the once-a-second sweep, not
  per request; the grace spares a small body whose last packet was lost and sent again); chunked trailers are read and dropped, and what a chunked body carries besides
  its data (trailers, chunk extensions) counts against the head bound (431);
- responses framed by the application's ``content-length``, else by the length of a body sent in
  one message, else chunked (HTTP/1.1) or by closing the connection (HTTP/1.0); head and first
  body in one write; writes wait while the client's socket buffer is full (slow readers), and a
  client that reads nothing for ``write_timeout_s`` is cut off;
- ``HEAD`` (the head an answer would have, no body); ``Connection: close``; malformed requests
  answered 400 in OpenAI's shape; request heads bounded in size (431) and time; upgrades
  (``h2c``, websockets) not taken: the request is answered on HTTP/1.1 and the connection closed;
- an answer sent before its request body was read whole (a 413) ends with a lingering close,
  so that the client reads it instead of a reset;
- idle keep-alive connections closed after ``keepalive_timeout_s``, swept once a second (no timer
  per request); graceful shutdown: stop accepting, let requests in flight finish for a while,
  then close the rest (their applications see the client leave).

A client that goes away is reported the ASGI way (``receive()`` returns ``http.disconnect``) and,
to an application that registered for it, by a callback (:data:`~.asgi.CANCEL_ON_DISCONNECT`). No
TLS (the cluster's ingress terminates it), no HTTP/2, no websockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from ..errors import APIError, InvalidRequest, RequestTimeout, error_response
from .asgi import CANCEL_ON_DISCONNECT, Receive, Scope, Send

logger = logging.getLogger(__name__)

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BODY_HIGH_WATER = 64 * 1024
"""Unread request body bytes above which the connection stops reading."""
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LINGER_S = 5.0
"""How long a connection answered before its request body was read whole stays open, reading
and dropping, before it closes."""
BODY_RATE_GRACE_S = 5.0
"""A request body's average rate is judged from this many seconds after its head on: a TCP
retransmission or two must not cut off a small body sent at once."""
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_NO_BODY_STATUSES = frozenset({204, 304})
_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}
MALFORMED = "malformed_request"
"""The error code of a request the server cannot read as HTTP/1.1."""
_ASGI = {"version": "3.0", "spec_version": "2.3"}


def _error_answer(exc: BaseException) -> bytes:
    """A whole response with ``exc``'s OpenAI-shaped error, closing the connection."""
    reply = error_response(exc)
    body = reply.body.model_dump_json().encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s"
        % (reply.status_code, _REASONS.get(reply.status_code, b""), len(body), body)
    )


class HeadersTooLarge(APIError):
    """431: the request line and headers are over the server's bound."""

    status_code = 431
    type = "invalid_request_error"
    code = "headers_too_large"


class _Request:
    """One request and its response: the ``receive`` and ``send`` its application gets."""

    __slots__ = (
        "body_complete",
        "chunked",
        "chunks",
        "conn",
        "delivered",
        "disconnected",
        "expect_continue",
        "head",
        "head_written",
        "keep_alive",
        "on_gone",
        "received",
        "response_complete",
        "scope",
        "started",
        "task",
        "unread",
        "waiter",
    )

    def __init__(self, conn: _Connection, scope: Scope, keep_alive: bool) -> None:
        self.conn, self.scope, self.keep_alive = conn, scope, keep_alive
        self.chunks: list[bytes] = []
        self.unread = 0
        self.received = 0
        """Body bytes read so far."""
        self.started = 0.0
        """When its application started (its body's clock)."""
        self.body_complete = False
        self.delivered = False
        """The last body message went to the application."""
        self.disconnected = False
        self.expect_continue = False
        self.head: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self.head_written = False
        self.chunked = False
        self.response_complete = False
        self.waiter: asyncio.Future[None] | None = None
        self.on_gone: Callable[[], object] | None = None
        self.task: asyncio.Task[None] | None = None

    def cancel_on_disconnect(self, callback: Callable[[], object]) -> None:
        """The :data:`~.asgi.CANCEL_ON_DISCONNECT` extension."""
        self.on_gone = callback
        if self.disconnected:
            self.gone()

    # What the connection reports.
    def body(self, data: bytes) -> None:
        self.chunks.append(data)
        self.unread += len(data)
        self.received += len(data)
        self._wake()

    def complete(self) -> None:
        self.body_complete = True
        self._wake()

    def gone(self) -> None:
        self.disconnected = True
        self._wake()
        callback, self.on_gone = self.on_gone, None
        if callback is not None and not self.response_complete and self.task is not None:
            callback()
            self.task.cancel()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ASGI.
    async def receive(self) -> dict[str, Any]:
        if self.expect_continue:
            self.expect_continue = False
            if not self.body_complete and not self.disconnected and not self.head_written:
                self.conn.write(_CONTINUE)
        while True:
            if self.disconnected or self.response_complete:
                return _DISCONNECT
            if not self.delivered and (self.chunks or self.body_complete):
                chunks, self.chunks = self.chunks, []
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self.unread = 0
                self.delivered = self.body_complete
                self.conn.update_reading()
                return {"type": "http.request", "body": body, "more_body": not self.delivered}
            self.waiter = self.conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.head is not None:
                raise RuntimeError("http.response.start sent twice")
            self.head = (message["status"], list(message.get("headers", ())))
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if self.head is None or self.response_complete:
            raise RuntimeError("http.response.body sent before the start or after the end")
        if self.disconnected:
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        out = b"" if self.head_written else self._head(len(body), more)
        head_only = self.scope["method"] == "HEAD"
        if body and not head_only:
            out += b"%x\r\n%s\r\n" % (len(body), body) if self.chunked else body
        if not more:
            self.response_complete = True
            self._wake()  # a receive() waiting for the client's departure: the exchange is over
            if self.chunked and not head_only:
                out += b"0\r\n\r\n"
        if out:
            self.conn.write(out)
        if not more:
            self.conn.finished(self)
        elif self.conn.write_paused:
            await self.conn.drain()

    def _head(self, first: int, more: bool) -> bytes:
        """The status line and headers, choosing the framing (see the module docstring)."""
        status, headers = self.head  # type: ignore[misc]
        self.head_written = True
        self.expect_continue = False
        framed = status in _NO_BODY_STATUSES or 100 <= status < 200
        if not framed:
            framed = any(name.lower() == b"content-length" for name, _ in headers)
        if not framed:
            if not more:
                headers.append((b"content-length", b"%d" % first))
            elif self.scope["http_version"] == "1.1":
                headers.append((b"transfer-encoding", b"chunked"))
                self.chunked = True
            else:
                self.keep_alive = False  # HTTP/1.0: the body ends with the connection
        if self.conn.server.stopping or not self.body_complete:
            self.keep_alive = False  # (an answer before the whole body: see finished())
        if not self.keep_alive:
            headers.append((b"connection", b"close"))
        elif self.scope["http_version"] == "1.0":
            headers.append((b"connection", b"keep-alive"))
        reason = _REASONS.get(status, b"")
        lines = b"".join(b"%s: %s\r\n" % pair for pair in headers)
        return b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason, lines)


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs the application once per request."""

    def __init__(self, server: HTTPServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server, self.loop = server, loop
        """The loop, kept: ``asyncio.get_running_loop()`` costs a system call (getpid) each."""
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: _Request | None = None
        """The request whose application runs (or whose response is being written)."""
        self.queued: deque[_Request] = deque()
        """Pipelined requests waiting for ``current`` to finish."""
        self.incoming: _Request | None = None
        """The request being parsed (``current``, or the last of ``queued``)."""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_continue = False
        self.in_head = True
        """The next bytes belong to a request's head (counted against ``max_head_bytes``)."""
        self.head_bytes = 0
        self.head_started = 0.0
        """When the head being read began (0: none is): slow heads are cut off."""
        self.discarding = False
        """Answered early (see :meth:`finished`) or broken: what still arrives is dropped."""
        self.framing: int | None = None
        """Bytes of a chunked body that were neither data nor a chunk's header line since the
        last chunk header: trailers and chunk extensions (``None``: no chunked body is read)."""
        self.body_bytes = 0
        self.chunk_headers = 0
        self.upgraded = False
        self.upgrade_body_left = 0
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.last_active = time.monotonic()
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        self.client = tuple(peer[:2]) if isinstance(peer, tuple) else None  # type: ignore[assignment]
        self.local = tuple(local[:2]) if isinstance(local, tuple) else None  # type: ignore[assignment]
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        now = self.last_active = time.monotonic()
        if self.discarding:
            return
        if self.in_head:
            # Counted here, before llhttp: it buffers a header line until the line ends, so a
            # bound checked in its callbacks would come after an endless line was held whole.
            end = data.find(b"\r\n\r\n")
            self.head_bytes += len(data) if end < 0 else end + 4
            self.head_started = self.head_started or now
            if self.head_bytes > self.server.max_head_bytes:
                limit = self.server.max_head_bytes
                self.refuse(
                    HeadersTooLarge(f"The request line and headers are over {limit} bytes.")
                )
                return
        if self.upgraded:
            self._upgrade_body(data)
            return
        framing = self.framing
        if framing is not None:  # a chunked body is being read: see _count_framing
            body, chunks = self.body_bytes, self.chunk_headers
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgraded = True
            self._upgrade_body(data[exc.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, APIError):
                cause = InvalidRequest(str(cause), code=MALFORMED)
            self.refuse(cause)
        except httptools.HttpParserError as exc:
            self.refuse(InvalidRequest(f"Malformed HTTP request: {exc}.", code=MALFORMED))
        else:
            if framing is not None and self.framing is not None:
                self._count_framing(framing + len(data) - (self.body_bytes - body), chunks)

    def _count_framing(self, framing: int, chunks: int) -> None:
        """Bound what a chunked body sends besides its data. A read that held a chunk header
        restarts the count (the chunk sizes of a body in small chunks are not held against it);
        the trailers come after the last one, so they are all counted, and llhttp's buffering of
        one trailer line is bounded by one read on top of the bound."""
        if self.chunk_headers != chunks:
            self.framing = 0
            return
        self.framing = framing
        if framing > self.server.max_head_bytes:
            limit = self.server.max_head_bytes
            self.refuse(
                HeadersTooLarge(
                    f"The request's trailers and chunk extensions are over {limit} bytes."
                )
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.current is not None:
            self.current.gone()
        self.queued.clear()
        self._release_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._release_drain()

    def _release_drain(self) -> None:
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.expect_continue = b"", [], False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.in_head:
            return  # a trailer of a chunked body: counted (see data_received), then dropped
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes, self.head_started = False, 0, 0.0
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("latin-1")
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": self.parser.get_http_version(),
            "method": self.parser.get_method().decode("ascii"),
            "scheme": "http",
            "path": unquote(path) if "%" in path else path,
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "root_path": "",
            "headers": self.headers,
            "client": self.client,
            "server": self.local,
        }
        request = _Request(self, scope, self.parser.should_keep_alive())
        scope["extensions"] = {CANCEL_ON_DISCONNECT: request.cancel_on_disconnect}
        request.expect_continue = self.expect_continue
        if self.parser.should_upgrade():
            # llhttp leaves every byte after this head to the protocol upgraded to (h2c from
            # `curl --http2`, websockets). We switch to none: the body is read here, by its
            # content-length, the request answered on HTTP/1.1 and the connection closed after.
            if any(k == b"transfer-encoding" for k, _ in self.headers):
                raise InvalidRequest(
                    "An Upgrade request with a chunked body is not supported: send it without "
                    "the Upgrade header, or with a content-length.",
                    code=MALFORMED,
                )
            request.keep_alive = False
            length = next((v for k, v in self.headers if k == b"content-length"), b"0").strip()
            self.upgrade_body_left = int(length) if length.isdigit() else 0
        self.incoming = request
        if self.current is None:
            self._start(request)
        else:
            self.queued.append(request)
            self.update_reading()

    def on_chunk_header(self) -> None:
        self.chunk_headers += 1
        if self.framing is None:
            self.framing = 0

    def on_body(self, body: bytes) -> None:
        assert self.incoming is not None
        self.body_bytes += len(body)
        self.incoming.body(body)
        if self.incoming.unread > _BODY_HIGH_WATER:
            self.update_reading()

    def on_message_complete(self) -> None:
        assert self.incoming is not None
        self.in_head = True
        self.framing = None
        if self.upgrade_body_left:
            return  # llhttp's "complete" before the body of an upgrade request: not yet
        self.incoming.complete()
        self.incoming = None

    def _upgrade_body(self, data: bytes) -> None:
        """Bytes after an upgrade request's head: its body, then nothing we read."""
        request = self.incoming
        if request is None or not self.upgrade_body_left:
            return
        part = data[: self.upgrade_body_left]
        self.upgrade_body_left -= len(part)
        if part:
            request.body(part)
        if not self.upgrade_body_left:
            request.complete()
            self.incoming = None

    # What requests use.
    def write(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the client read enough of what was written, or went away. A client that
        reads nothing for ``write_timeout_s`` is cut off: it would hold its answer's task, the
        upstream connection and the engine's work for good."""
        transport = self.transport
        if self.write_paused and transport is not None and not transport.is_closing():
            self.drain_waiter = self.loop.create_future()
            stalled = self.loop.call_later(self.server.write_timeout_s, transport.abort)
            try:
                await self.drain_waiter
            finally:
                stalled.cancel()
                self.drain_waiter = None

    def finished(self, request: _Request) -> None:
        """``request``'s response is complete: close, or go on to the next request."""
        assert self.transport is not None
        self.current = None
        self.last_active = time.monotonic()
        if not request.body_complete:
            # Answered before its body was read whole (a 413 from the headers, 100-continue not
            # granted): the rest may still be on its way.
            self._close_lingering()
            return
        if not request.keep_alive or self.server.stopping:
            self.transport.close()
            return
        if self.queued:
            self._start(self.queued.popleft())
        self.update_reading()

    def update_reading(self) -> None:
        """Read while nothing waits: no pipelined request queued, no big unread body."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        incoming = self.incoming
        pause = bool(self.queued) or (incoming is not None and incoming.unread > _BODY_HIGH_WATER)
        if pause and not self.reading_paused:
            transport.pause_reading()
        elif not pause and self.reading_paused:
            transport.resume_reading()
        self.reading_paused = pause

    def refuse(self, exc: APIError) -> None:
        """A request the server cannot parse or bound: answer it (OpenAI's shape) and close."""
        assert self.transport is not None
        current = self.current
        self.discarding = True
        if current is not None and self.incoming is not current:
            # The broken request was pipelined behind one still being answered: let that
            # answer finish (finished() closes after it); the broken one gets no answer.
            current.keep_alive = False
            self.queued.clear()
            self.incoming = None
            return
        if current is not None:
            current.gone()  # its own body broke: its application sees the client leave
        if current is None or not current.head_written:
            self.transport.write(_error_answer(exc))
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Close a connection whose client may still be sending (nginx's "lingering close"):
        closing a socket with unread data resets it, and a reset can lose the answer just
        written at the client. So: send FIN, drop what still arrives, close a little later."""
        assert self.transport is not None
        self.discarding, self.incoming = True, None
        self.queued.clear()
        self.update_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.transport.close)

    def expired(self, now: float) -> bool:
        """Idle past the keep-alive timeout between requests, or reading one head too long."""
        server = self.server
        if self.head_started and now - self.head_started > server.head_timeout_s:
            return True
        if self.current is not None or self.queued:
            return False
        return now - self.last_active > server.keepalive_timeout_s

    def body_overdue(self, now: float) -> APIError | None:
        """The 408 for the running request's body if it is late or too slow, else ``None``.
        Not while reading is paused: then the application, not the client, is behind."""
        request = self.current
        if request is None or request.body_complete or request is not self.incoming:
            return None
        if self.reading_paused:
            return None
        server, elapsed = self.server, now - request.started
        if elapsed > server.body_timeout_s:
            return RequestTimeout(
                f"The request body did not arrive within {server.body_timeout_s:g} seconds."
            )
        rate = server.min_body_rate_bytes_s
        if elapsed > BODY_RATE_GRACE_S and request.received < rate * elapsed:
            return RequestTimeout(
                f"The request body arrived at {request.received / elapsed:.0f} bytes/s, "
                f"slower than the minimum of {rate:g} bytes/s."
            )
        return None

    def _start(self, request: _Request) -> None:
        self.current = request
        request.started = self.last_active
        task = request.task = self.loop.create_task(self._run(request))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def _run(self, request: _Request) -> None:
        try:
            await self.server.app(request.scope, request.receive, request.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                logger.exception("%s %s failed", request.scope["method"], request.scope["path"])
            self._abandon(request, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not request.response_complete and not request.disconnected:
                scope = request.scope
                logger.error(
                    "%s %s: the application sent no whole response", scope["method"], scope["path"]
                )
                self._abandon(request, RuntimeError("no response"))
        finally:
            # Undo the request's reference cycles (scope -> extension -> request -> task), so
            # that refcounting frees it now: left to the cyclic collector, a few dozen objects a
            # request made the collector a tenth of the gateway's CPU under load.
            request.task = request.on_gone = None
            request.scope["extensions"].clear()

    def _abandon(self, request: _Request, exc: BaseException) -> None:
        """The application ended without completing its response: a 500 if nothing was sent
        (OpenAI's shape, message hidden: it is our bug), else close the connection (a response
        begun cannot be framed as finished)."""
        if request.disconnected or request.response_complete or self.transport is None:
            return
        if request.head_written:
            self.transport.close()
            return
        request.keep_alive = False
        request.response_complete = True
        request._wake()
        self.write(_error_answer(exc))
        self.finished(request)


class HTTPServer:
    """Serves one ASGI application (HTTP only; lifespan is the caller's business).

    Args:
        app: The application.
        keepalive_timeout_s: Idle keep-alive connections are closed after this long.
        max_head_bytes: Bound on a request's head, request line and headers (431 above).
        head_timeout_s: A request head still incomplete after this long closes its connection
            (a client trickling bytes would otherwise hold it forever).
        write_timeout_s: A client that reads nothing of an answer for this long (its socket
            buffer full) is disconnected, which cancels the answer's application.
        body_timeout_s: A request body not read whole this long after its head is cut off with
            a 408 (the application sees the client leave).
        min_body_rate_bytes_s: Likewise a body arriving slower than this on average, once it
            has had :data:`BODY_RATE_GRACE_S`; 0: no minimum.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        keepalive_timeout_s: float = 5.0,
        max_head_bytes: int = 64 * 1024,
        head_timeout_s: float = 30.0,
        write_timeout_s: float = 60.0,
        body_timeout_s: float = 30.0,
        min_body_rate_bytes_s: float = 1024.0,
    ) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.min_body_rate_bytes_s = min_body_rate_bytes_s
        self.keepalive_timeout_s = keepalive_timeout_s
        self.max_head_bytes = max_head_bytes
        self.head_timeout_s = head_timeout_s
        self.write_timeout_s = write_timeout_s
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._server: asyncio.Server | None = None
        self.port = 0
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0: any free port, see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, loop), host, port, backlog=2048, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        """The port listened on."""
        self._sweeper = loop.create_task(self._sweep())

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting; let requests in flight finish for up to ``grace_s``; close the rest."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            if conn.current is None and conn.transport is not None:
                conn.transport.close()  # idle keep-alive connections go at once
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace_s)
        for conn in list(self.connections):
            if conn.current is not None:
                conn.current.gone()  # the application learns its client is gone
            if conn.transport is not None:
                conn.transport.abort()  # not close(): a client that reads nothing would hold it
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)
        for task in list(self.tasks):
            task.cancel()

    async def _sweep(self) -> None:
        """Close expired connections (idle keep-alive, slow heads) and cut off late or slow
        request bodies, once a second."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.transport is None:
                    continue
                if conn.expired(now):
                    conn.transport.close()
                elif not conn.discarding and (overdue := conn.body_overdue(now)) is not None:
                    conn.refuse(overdue)
