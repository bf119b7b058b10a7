"""The gateway's HTTP/1.1 client for proxied requests: pooled keep-alive connections, llhttp
(httptools) parsing, nothing else.

Why not aiohttp here: profiled under load, building, sending and reading one upstream request
through aiohttp took 39% of the gateway's CPU; this client does the same exchange in about a
quarter of that (bench/RESULTS.md, "Gateway"). It does only what the relay needs: POST a body,
read the status and headers, then the body whole or chunk by chunk as it arrives (chunked,
content-length, or until the connection closes, as HTTP/1.0 servers such as mlx-lm's frame it).
The gateway's other calls (health probes, GPU info, peers) stay on aiohttp.

Failures map onto three exceptions: :class:`ConnectFailed` (nothing was sent, or the
connection ended before a byte came back: another backend may be tried), :class:`ReadTimeout`
(the backend fell silent for ``read_timeout_s``) and :class:`BrokenResponse` (the answer ended
early).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 256 * 1024
"""Buffered body bytes above which the connection stops reading (the client is slower)."""

_Key = tuple[str, int, bool]
"""Where connections go: host, port, TLS."""


class ConnectFailed(ConnectionError):
    """The backend could not be reached, or closed the connection before answering."""


class ClosedBeforeAnswer(ConnectFailed):
    """The connection closed after the request was sent and before any byte of the answer."""


class ReadTimeout(TimeoutError):
    """The backend sent nothing for ``read_timeout_s``."""


class BrokenResponse(ConnectionError):
    """The answer ended before its framing said it would."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the one response being read on it."""

    def __init__(self, pool: Upstream, key: _Key, loop: asyncio.AbstractEventLoop) -> None:
        self.pool, self.key, self.loop = pool, key, loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self.response: Response | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for: the connection is not reusable
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.response.fail(BrokenResponse(f"malformed answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.response is not None:
            self.response.connection_lost()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.headers_complete(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response.body(body)

    def on_message_complete(self) -> None:
        assert self.response is not None
        self.response.complete(self.parser.should_keep_alive())

    def send(self, data: bytes, response: Response) -> None:
        assert self.transport is not None
        self.response = response
        self.transport.write(data)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """An upstream answer: ``status`` and ``raw_headers`` once :meth:`Upstream.post` returns,
    the body through :meth:`read` or :meth:`iter_chunks`. Always :meth:`close` it: a complete
    answer gives its connection back to the pool, anything else closes it."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_done",
        "_error",
        "_headers_seen",
        "_keep_alive",
        "_read_timeout",
        "_streaming",
        "_waiter",
        "raw_headers",
        "status",
    )

    def __init__(self, conn: _Connection, read_timeout: float) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._headers_seen = False
        self._streaming = False
        self._waiter: asyncio.Future[None] | None = None
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.status = 0

    # What the connection reports.
    def headers_complete(self, status: int) -> None:
        self.status = status
        self._headers_seen = True
        self._wake()

    def body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._streaming and self._buffered > _HIGH_WATER and self._conn.transport is not None:
            self._conn.transport.pause_reading()
        self._wake()

    def complete(self, keep_alive: bool) -> None:
        self._done, self._keep_alive = True, keep_alive
        self._wake()

    def connection_lost(self) -> None:
        if self._done:
            return
        if self._headers_seen and not self._framed():
            self._done = True  # HTTP/1.0 style: the body ends with the connection
        elif self._headers_seen:
            self._error = BrokenResponse("the backend closed the connection mid-answer")
        else:
            self._error = ClosedBeforeAnswer("the backend closed the connection before answering")
        self._wake()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._wake()

    # What the relay uses.
    @property
    def content_type(self) -> str:
        value = self.header(b"content-type") or b""
        return value.split(b";", 1)[0].strip().decode("latin-1").lower()

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case)."""
        for key, value in self.raw_headers:
            if key.lower() == name:
                return value
        return None

    async def read(self) -> bytes:
        """The whole body."""
        while not self._done:
            await self._wait()
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: everything buffered at each wake-up, in one piece."""
        self._streaming = True
        while True:
            if self._chunks:
                data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
                self._chunks.clear()
                if self._buffered > _HIGH_WATER and self._conn.transport is not None:
                    self._conn.transport.resume_reading()
                self._buffered = 0
                yield data
            elif self._done:
                return
            else:
                await self._wait()

    def close(self) -> None:
        """Give the connection back when the answer was read to its end, else close it."""
        conn, self._conn.response = self._conn, None
        if self._done and self._keep_alive and self._error is None and not conn.lost:
            conn.pool.release(conn)
        else:
            conn.close()

    async def wait_headers(self) -> None:
        while not self._headers_seen:
            await self._wait()

    def _framed(self) -> bool:
        return self.header(b"content-length") is not None or (
            b"chunked" in (self.header(b"transfer-encoding") or b"").lower()
        )

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        loop = self._conn.loop  # asyncio.get_running_loop() costs a system call (getpid)
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._read_timeout, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(ReadTimeout("the backend sent nothing in time"))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Upstream:
    """Keep-alive connections per backend host, reused while idle for up to ``keepalive_s``.

    Args:
        connect_timeout_s: longest wait for a new connection (TCP, and TLS for https).
        read_timeout_s: longest silence from a backend while its answer is awaited or read.
        keepalive_s: idle connections older than this are not reused.
        ssl_context: how https backends are verified (default: the system's trust store).
    """

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        keepalive_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.keepalive_s = keepalive_s
        self._ssl_context = ssl_context
        self._idle: dict[_Key, list[_Connection]] = {}
        self._targets: dict[str, tuple[_Key, bytes, bytes]] = {}

    async def post(self, url: str, body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> Response:
        """POST ``body`` to ``url``; returns once the status and headers arrived.

        Raises:
            ConnectFailed: no connection, or it closed before the answer began.
            ReadTimeout: no answer within ``read_timeout_s``.
        """
        key, path, host = self._target(url)
        head = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (path, host, len(body))
        request = head + b"".join(b"%s: %s\r\n" % pair for pair in headers) + b"\r\n" + body
        conn = self._checkout(key)
        if conn is not None:
            try:
                return await self._exchange(conn, request)
            except ClosedBeforeAnswer:
                # The backend closed this idle connection as it was reused (its keep-alive ran
                # out: uvicorn's is 5 s), so it never read the request: send it once more on a
                # new connection rather than count the backend as down.
                pass
        return await self._exchange(await self._connect(key), request)

    async def _exchange(self, conn: _Connection, request: bytes) -> Response:
        response = Response(conn, self.read_timeout_s)
        conn.send(request, response)
        try:
            await response.wait_headers()
        except BaseException:
            response.close()
            raise
        return response

    def release(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()  # its parser goes on with the next answer (llhttp)
        self._idle.setdefault(conn.key, []).append(conn)

    def close(self) -> None:
        """Close every idle connection (those in use close with their response)."""
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _target(self, url: str) -> tuple[_Key, bytes, bytes]:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConnectFailed(f"not an http:// or https:// URL: {url!r}")
            tls = parts.scheme == "https"
            port = parts.port or (443 if tls else 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.netloc.rsplit("@", 1)[-1]
            target = ((parts.hostname, port, tls), path.encode(), host.encode())
            if len(self._targets) < 4096:  # backends are few; bound it all the same
                self._targets[url] = target
        return target

    def _checkout(self, key: _Key) -> _Connection | None:
        conns = self._idle.get(key)
        oldest_usable = time.monotonic() - self.keepalive_s
        while conns:
            conn = conns.pop()
            if not conn.lost and conn.idle_since >= oldest_usable:
                return conn
            conn.close()
        return None

    async def _connect(self, key: _Key) -> _Connection:
        host, port, tls = key
        tls_context = None
        if tls:
            tls_context = self._ssl_context = self._ssl_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, key, loop), host, port, ssl=tls_context
                )
        except TimeoutError:
            raise ConnectFailed(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:  # refused, unreachable, unknown host, TLS verification
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from None
        return conn
