"""The gateway's HTTP/1.1 server, spoken to in raw bytes over a local socket: framing both ways,
keep-alive and pipelining, 100-continue, errors in OpenAI's shape, disconnects, backpressure,
idle connections and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from modelgrid_serving.gateway.asgi import CANCEL_ON_DISCONNECT, Receive, Scope, Send
from modelgrid_serving.gateway.http_server import HTTPServer
from polling import eventually

pytestmark = pytest.mark.integration


class App:
    """An ASGI app with one behaviour per path; it records what it saw."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.cancelled = asyncio.Event()
        self.told_gone = asyncio.Event()
        self.sent_chunks = 0
        self.finished = asyncio.Event()
        self.started = asyncio.Event()
        """Set when a request reaches the app."""
        self.waiting = asyncio.Event()
        """Set when ``/hang`` or ``/watch`` has read the request and waits on the client."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        self.started.set()
        try:
            behaviour = getattr(self, "_" + (path.strip("/").split("/")[0] or "echo"))
            await behaviour(scope, receive, send)
        finally:
            self.finished.set()

    async def _echo(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append({"path": scope["path"], "query": scope["query_string"], "body": body})
        reply = json.dumps({"path": scope["path"], "length": len(body)}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": reply})

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers 413 from the headers alone, never reading the body."""
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too big"})

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _flood(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(256):
            await send({"type": "http.response.body", "body": b"x" * 2**20, "more_body": True})
            self.sent_chunks += 1
        await send({"type": "http.response.body", "body": b""})

    async def _boom(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug")

    async def _half(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("a bug mid-answer")

    async def _hang(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        scope["extensions"][CANCEL_ON_DISCONNECT](self.told_gone.set)
        self.waiting.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def _watch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No extension: waits for ``http.disconnect`` the plain ASGI way."""
        await receive()
        self.waiting.set()
        if (await receive())["type"] == "http.disconnect":
            self.told_gone.set()

    async def _linger(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers, then waits on ``receive()`` as a disconnect watcher would."""
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        if (await receive())["type"] == "http.disconnect":
            self.told_gone.set()

    async def _slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.3)  # slowness is this path's behaviour: a request stays in flight
        await self._echo(scope, receive, send)


@dataclass
class Client:
    """One raw connection to a started server, and the app behind that server."""

    server: HTTPServer
    app: App
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def send(self, raw: bytes) -> None:
        self.writer.write(raw)

    async def read(self) -> tuple[int, dict[bytes, bytes], bytes]:
        return await read_response(self.reader)

    async def exchange(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send ``raw`` and read one response (see :func:`read_response`)."""
        self.send(raw)
        return await self.read()

    async def closed(self) -> bool:
        return await closed(self.reader)

    async def leave_while_waited_on(self, path: str) -> None:
        """Send a request to ``path`` and hang up once the application is waiting on it."""
        self.send(post(path, b"{}"))
        await asyncio.wait_for(self.app.waiting.wait(), 5)
        self.writer.close()


Start = Callable[..., Awaitable[Client]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """``start(**server options)``: an :class:`App` on a server on a free local port, and a
    connection to it; each connection is closed and each server stopped after the test."""
    clients: list[Client] = []

    async def run(**options: Any) -> Client:
        app = App()
        server = HTTPServer(app, **options)
        await server.start("127.0.0.1", 0)
        clients.append(Client(server, app, *await connect(server)))
        return clients[-1]

    yield run
    for client in clients:
        client.writer.close()
        await client.server.stop(grace_s=0.5)


async def connect(server: HTTPServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


def post(path: str, body: bytes, *extra: bytes, version: bytes = b"1.1") -> bytes:
    head = b"POST %s HTTP/%s\r\nhost: t\r\ncontent-length: %d\r\n" % (
        path.encode(),
        version,
        len(body),
    )
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response: status, headers (lower case), body (content-length, chunked or to EOF)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines[1:] if line)
    }
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await asyncio.wait_for(reader.read(), 5)
    return status, headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection (EOF, or a reset or broken pipe, within 3 s)."""
    try:
        return await asyncio.wait_for(reader.read(), 3) == b""
    except ConnectionError:
        return True


async def test_keep_alive_answers_several_requests_on_one_connection(start: Start) -> None:
    client = await start()
    for n in range(3):
        client.send(post(f"/echo/{n}", b"x" * n))
        status, headers, body = await client.read()
        assert status == 200
        assert json.loads(body) == {"path": f"/echo/{n}", "length": n}
        assert headers[b"content-length"] == str(len(body)).encode()
        assert b"connection" not in headers


async def test_pipelined_requests_are_answered_in_order(start: Start) -> None:
    client = await start()
    client.send(post("/slow/a", b"1") + post("/echo/b", b"22") + post("/echo/c", b""))
    answers = [json.loads((await client.read())[2]) for _ in range(3)]
    assert [a["path"] for a in answers] == ["/slow/a", "/echo/b", "/echo/c"]
    assert [a["length"] for a in answers] == [1, 2, 0]


async def test_chunked_request_body_and_query_and_escaped_path(start: Start) -> None:
    client = await start()
    status, _, _ = await client.exchange(
        b"POST /echo/a%20b?x=1 HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    assert status == 200
    assert client.app.seen[-1] == {"path": "/echo/a b", "query": b"x=1", "body": b"hello world"}


async def test_a_body_larger_than_the_read_buffer_arrives_whole(start: Start) -> None:
    client = await start()
    payload = bytes(range(256)) * 8192  # 2 MiB: reading pauses and resumes along the way
    status, _, body = await client.exchange(post("/echo", payload))
    assert (status, json.loads(body)["length"]) == (200, len(payload))
    assert client.app.seen[-1]["body"] == payload


async def test_expect_100_continue_is_answered_when_the_body_is_read(start: Start) -> None:
    client = await start()
    head = post("/echo", b"abc", b"expect: 100-continue")
    client.send(head[:-3])  # the head only, as curl does for larger bodies
    interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    status, _, body = await client.exchange(b"abc")
    assert (status, json.loads(body)["length"]) == (200, 3)


async def test_an_answer_before_the_body_skips_100_continue_and_closes(start: Start) -> None:
    client = await start()
    status, headers, body = await client.exchange(
        post("/refuse", b"x" * 100, b"expect: 100-continue")[:-100]
    )
    assert (status, body, headers[b"connection"]) == (413, b"too big", b"close")
    assert await client.closed()  # the unread body must not be parsed as a next request


async def test_a_streamed_answer_is_chunked_on_http_1_1(start: Start) -> None:
    client = await start()
    status, headers, body = await client.exchange(post("/stream", b""))
    assert (status, headers[b"transfer-encoding"], body) == (200, b"chunked", b"one two three")
    client.send(post("/echo", b""))  # and the connection is still usable
    assert (await client.read())[0] == 200


async def test_a_streamed_answer_ends_with_the_connection_on_http_1_0(start: Start) -> None:
    client = await start()
    # The answer is read to EOF: it has no length and no chunks.
    status, headers, body = await client.exchange(post("/stream", b"", version=b"1.0"))
    assert (status, body, headers[b"connection"]) == (200, b"one two three", b"close")
    assert b"transfer-encoding" not in headers


async def test_head_sends_the_headers_without_the_body(start: Start) -> None:
    client = await start()
    client.send(b"HEAD /echo HTTP/1.1\r\nhost: t\r\n\r\n" + post("/echo/next", b""))
    head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: " in head
    status, _, body = await client.read()  # the next answer follows at once
    assert (status, json.loads(body)["path"]) == (200, "/echo/next")


async def test_connection_close_is_honoured(start: Start) -> None:
    client = await start()
    status, headers, _ = await client.exchange(post("/echo", b"", b"connection: close"))
    assert (status, headers[b"connection"]) == (200, b"close")
    assert await client.closed()


async def test_a_malformed_request_gets_an_openai_400_and_the_connection_closes(
    start: Start,
) -> None:
    client = await start()
    status, _, body = await client.exchange(
        b"POST /echo HTTP/1.1\r\ncontent-length: banana\r\n\r\n"
    )
    assert status == 400
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "malformed_request")
    assert await client.closed()


async def test_an_oversized_request_head_gets_431(start: Start) -> None:
    client = await start(max_head_bytes=1024)
    status, _, body = await client.exchange(post("/echo", b"", b"x-filler: " + b"y" * 2000))
    assert status == 431
    assert "1024 bytes" in json.loads(body)["error"]["message"]
    assert await client.closed()


async def test_an_application_error_before_the_answer_is_an_openai_500(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start()
    status, _, body = await client.exchange(post("/boom", b""))
    error = json.loads(body)["error"]
    assert (status, error["type"]) == (500, "server_error")
    assert "a bug" not in error["message"]  # our bug's details stay in the log
    assert "a bug" in caplog.text


async def test_an_application_error_mid_answer_closes_the_connection_unterminated(
    start: Start,
) -> None:
    client = await start()
    client.send(post("/half", b""))
    head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
    assert b"transfer-encoding: chunked" in head
    rest = await asyncio.wait_for(client.reader.read(), 5)  # to EOF
    assert rest == b"7\r\npartial\r\n"  # no terminating 0-chunk: the client sees it broke off


async def test_a_client_that_leaves_cancels_an_application_that_asked_for_it(start: Start) -> None:
    client = await start()
    await client.leave_while_waited_on("/hang")
    await asyncio.wait_for(client.app.cancelled.wait(), 5)
    assert client.app.told_gone.is_set()


async def test_a_client_that_leaves_is_an_http_disconnect_message_otherwise(start: Start) -> None:
    client = await start()
    await client.leave_while_waited_on("/watch")
    await asyncio.wait_for(client.app.told_gone.wait(), 5)


async def test_a_client_that_does_not_read_holds_the_application_back(start: Start) -> None:
    client = await start()
    client.send(post("/flood", b""))
    # The time the application is given to run ahead is the subject: it must not get far.
    await asyncio.sleep(1.0)
    # 256 MiB offered; socket buffers take a few MiB, the rest waits for the reader
    assert 0 < client.app.sent_chunks < 64
    client.writer.transport.abort()
    await asyncio.wait_for(client.app.finished.wait(), 5)  # its waiting send returns once it left


async def test_idle_keep_alive_connections_are_closed(start: Start) -> None:
    client = await start(keepalive_timeout_s=0.2)
    client.send(post("/echo", b""))
    assert (await client.read())[0] == 200
    assert await client.closed()  # the sweep runs once a second


async def test_an_upgrade_request_is_answered_and_the_connection_closed(start: Start) -> None:
    client = await start()
    status, headers, body = await client.exchange(
        post("/echo", b"{}", b"connection: Upgrade, HTTP2-Settings", b"upgrade: h2c")
    )
    assert (status, json.loads(body)["length"], headers[b"connection"]) == (200, 2, b"close")
    assert await client.closed()


async def test_stop_lets_a_request_in_flight_finish_and_refuses_new_connections(
    start: Start,
) -> None:
    client = await start()
    client.send(post("/slow", b"abc"))
    await asyncio.wait_for(client.app.started.wait(), 5)
    stopping = asyncio.create_task(client.server.stop(grace_s=5))
    status, headers, body = await client.read()
    assert (status, json.loads(body)["length"], headers[b"connection"]) == (200, 3, b"close")
    await asyncio.wait_for(stopping, 5)
    with pytest.raises(OSError):
        await connect(client.server)


async def test_a_header_line_that_never_ends_is_refused_at_the_bound(start: Start) -> None:
    client = await start(max_head_bytes=1024)
    endless = b"POST /echo HTTP/1.1\r\nx-big: " + b"y" * 200_000  # no end of line, ever
    status, _, _ = await client.exchange(endless)
    assert status == 431


async def test_a_head_trickling_in_is_cut_off(start: Start) -> None:
    client = await start(head_timeout_s=0.3)
    with contextlib.suppress(ConnectionError):
        for _ in range(12):  # a byte now and then: never idle, never a whole head
            if client.reader.at_eof():
                break
            client.send(b"x")
            # the trickle is the subject: slower than a head, faster than idle
            await asyncio.sleep(0.25)
    assert await client.closed()


async def test_expect_100_continue_is_read_in_any_case(start: Start) -> None:
    client = await start()
    client.send(post("/echo", b"abc", b"Expect: 100-Continue")[:-3])
    interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    client.send(b"abc")
    assert (await client.read())[0] == 200


async def test_head_of_a_streamed_answer_sends_no_chunks(start: Start) -> None:
    client = await start()
    client.send(b"HEAD /stream HTTP/1.1\r\nhost: t\r\n\r\n" + post("/echo/next", b""))
    head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
    assert b"transfer-encoding: chunked" in head
    status, _, body = await client.read()  # no 0-chunk in between
    assert (status, json.loads(body)["path"]) == (200, "/echo/next")


async def test_receive_says_disconnect_once_the_answer_is_complete(start: Start) -> None:
    client = await start()
    client.send(post("/linger", b"{}"))
    assert (await client.read())[2] == b"done"
    await asyncio.wait_for(client.app.told_gone.wait(), 5)  # the connection is still open


async def test_a_broken_chunked_body_gets_a_400(start: Start) -> None:
    client = await start()
    status, _, body = await client.exchange(
        b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n"
    )
    assert (status, json.loads(body)["error"]["type"]) == (400, "invalid_request_error")
    assert await client.closed()


async def test_a_broken_request_behind_one_in_flight_lets_that_one_finish(start: Start) -> None:
    client = await start()
    status, _, body = await client.exchange(post("/slow", b"ab") + b"NOT HTTP AT ALL\r\n\r\n")
    assert (status, json.loads(body)["length"]) == (200, 2)
    assert await client.closed()


async def test_an_upgrade_request_with_a_chunked_body_is_refused(start: Start) -> None:
    client = await start()
    status, _, body = await client.exchange(
        b"POST /echo HTTP/1.1\r\nhost: t\r\nconnection: Upgrade\r\nupgrade: h2c\r\n"
        b"transfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    assert status == 400 and "chunked" in json.loads(body)["error"]["message"]
    assert client.app.seen == []  # never handed over with a lost body


async def test_stop_releases_an_answer_stuck_on_a_client_that_reads_nothing(
    start: Start,
) -> None:
    client = await start()
    client.send(post("/flood", b""))
    await eventually(lambda: client.app.sent_chunks, timeout=5, what="the flood to start")
    assert not client.app.finished.is_set()  # blocked: the client reads nothing
    await asyncio.wait_for(client.server.stop(grace_s=0.2), 5)
    assert client.app.finished.is_set()


async def test_a_client_that_stops_reading_is_cut_off_after_the_write_timeout(
    start: Start,
) -> None:
    client = await start(write_timeout_s=0.5)
    client.send(post("/flood", b""))
    await asyncio.wait_for(client.app.finished.wait(), 5)  # released without a stop or a close
