"""The gateway's upstream HTTP/1.1 client against a local server that answers with raw bytes:
the three ways a body is framed, connection reuse, TLS, and each failure it names."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from modelgrid_serving.gateway.upstream import BrokenResponse, ConnectFailed, ReadTimeout, Upstream

pytestmark = pytest.mark.integration

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON_BODY = b'{"ok": true}'


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (content-length framed), as the client sent it."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


class Backend:
    """A local server running ``answer`` for each connection; counts connections."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Backend]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer, tls: ssl.SSLContext | None = None) -> Backend:
        backend = Backend(answer)
        server = await asyncio.start_server(backend.handle, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        scheme = "https" if tls else "http"
        port = server.sockets[0].getsockname()[1]
        backend.url = f"{scheme}://127.0.0.1:{port}/v1/chat/completions"
        return backend

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def upstream(**overrides: Any) -> Upstream:
    return Upstream(**{"connect_timeout_s": 2.0, "read_timeout_s": 2.0, **overrides})


def keep_alive_json(requests: list[bytes] | None = None) -> Answer:
    """Answers every request on the connection with ``JSON_BODY``; records the requests."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            if requests is not None:
                requests.append(request)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(JSON_BODY), JSON_BODY)
            )
            await writer.drain()

    return answer


async def test_a_json_answer_is_read_whole_and_its_connection_reused(serve) -> None:
    requests: list[bytes] = []
    backend = await serve(keep_alive_json(requests))
    client = upstream()
    for _ in range(3):
        resp = await client.post(backend.url, b'{"model": "m"}', [(b"x-request-id", b"r1")])
        assert (resp.status, resp.content_type) == (200, "application/json")
        assert await resp.read() == JSON_BODY
        resp.close()
    assert backend.connections == 1
    sent = requests[-1]
    assert sent.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nx-request-id: r1\r\n" in sent and sent.endswith(b'\r\n\r\n{"model": "m"}')
    client.close()


async def test_idle_connections_older_than_keepalive_are_not_reused(serve) -> None:
    backend = await serve(keep_alive_json())
    client = upstream(keepalive_s=0.05)
    for _ in range(2):
        resp = await client.post(backend.url, b"{}", [])
        await resp.read()
        resp.close()
        await asyncio.sleep(0.1)  # the subject: the idle connection outlives the keep-alive
    assert backend.connections == 2
    client.close()


async def test_a_chunked_stream_arrives_as_it_is_sent(serve) -> None:
    release = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        writer.write(b"transfer-encoding: chunked\r\n\r\n")
        first = b"data: 1\n\n"
        writer.write(b"%x\r\n%s\r\n" % (len(first), first))
        await writer.drain()
        await release.wait()
        last = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))
        await writer.drain()
        await reader.read()  # keep-alive: wait for the client to go

    backend = await serve(stream)
    client = upstream()
    resp = await client.post(backend.url, b"{}", [])
    assert resp.content_type == "text/event-stream"
    chunks = resp.iter_chunks()
    assert await anext(chunks) == b"data: 1\n\n"  # before the rest was even written
    release.set()
    assert [chunk async for chunk in chunks] == [b"data: [DONE]\n\n"]
    resp.close()
    assert client._idle  # a complete chunked answer gives its connection back
    client.close()


async def test_a_body_framed_by_closing_the_connection_ends_cleanly(serve) -> None:
    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        writer.write(b"data: 1\n\ndata: [DONE]\n\n")
        await writer.drain()

    backend = await serve(http10)
    client = upstream()
    resp = await client.post(backend.url, b"{}", [])
    assert b"".join([chunk async for chunk in resp.iter_chunks()]) == (
        b"data: 1\n\ndata: [DONE]\n\n"
    )
    resp.close()
    assert not client._idle  # not reusable
    client.close()


async def test_an_answer_cut_short_is_a_broken_response(serve) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()

    backend = await serve(cut)
    client = upstream()
    resp = await client.post(backend.url, b"{}", [])
    with pytest.raises(BrokenResponse):
        await resp.read()
    resp.close()


async def test_a_connection_closed_before_the_answer_is_a_connect_failure(serve) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    backend = await serve(hang_up)
    with pytest.raises(ConnectFailed, match="before answering"):
        await upstream().post(backend.url, b"{}", [])


async def test_nobody_listening_is_a_connect_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await upstream().post(f"http://127.0.0.1:{port}/v1/x", b"{}", [])


async def test_silence_is_a_read_timeout_before_and_during_the_answer(serve) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await writer.drain()
        await reader.read()

    client = upstream(read_timeout_s=0.1)
    with pytest.raises(ReadTimeout):
        await client.post((await serve(silent)).url, b"{}", [])
    resp = await client.post((await serve(stalls)).url, b"{}", [])
    with pytest.raises(ReadTimeout):
        await resp.read()
    resp.close()


async def test_closing_an_unfinished_answer_closes_its_connection(serve) -> None:
    gone = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # returns when the client closes: the backend can stop
        gone.set()

    backend = await serve(endless)
    client = upstream()
    resp = await client.post(backend.url, b"{}", [])
    assert await anext(resp.iter_chunks()) == b"hello"
    resp.close()
    await asyncio.wait_for(gone.wait(), 2)
    assert not client._idle


async def test_a_slow_reader_pauses_the_connection_instead_of_buffering_without_bound(
    serve,
) -> None:
    size = 4 * 1024 * 1024

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()
        await reader.read()

    backend = await serve(big)
    client = upstream()
    resp = await client.post(backend.url, b"{}", [])
    chunks = resp.iter_chunks()
    first = await anext(chunks)
    await asyncio.sleep(0.2)  # the server keeps writing while nobody reads
    assert resp._buffered <= 1024 * 1024, resp._buffered  # paused near the high-water mark
    total = len(first) + sum([len(chunk) async for chunk in chunks])
    assert total == size
    resp.close()
    client.close()


async def test_https_backends_are_verified_against_the_trust_store_given(serve) -> None:
    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    backend = await serve(keep_alive_json(), server_context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    client = upstream(ssl_context=trusting)
    resp = await client.post(backend.url, b"{}", [])
    assert (resp.status, await resp.read()) == (200, JSON_BODY)
    resp.close()
    client.close()
    with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
        await upstream(ssl_context=ssl.create_default_context()).post(backend.url, b"{}", [])


async def test_a_reused_connection_closed_by_the_backend_is_retried_once_on_a_new_one(
    serve,
) -> None:
    async def closes_idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await read_request(reader)  # the next request on this connection: hang up unanswered,
        # as a server whose keep-alive ran out just as the request came

    backend = await serve(closes_idle)
    client = upstream()
    for _ in range(2):
        resp = await client.post(backend.url, b"{}", [])
        assert await resp.read() == b"ok"
        resp.close()
    assert backend.connections == 2
    client.close()
