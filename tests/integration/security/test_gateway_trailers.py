"""A client sends a chunked request whose trailers never end: they count against the 64 KiB bound
on a request's head (431), instead of being read into the request's headers (8 MB were)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from integration.security.gateway_attack import gateway, json_body, read_response

pytestmark = [pytest.mark.integration, pytest.mark.security]

BODY = b'{"model": "nope", "messages": []}'
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n"
FIRST_CHUNK = b"%x\r\n%s\r\n0\r\n" % (len(BODY), BODY)


async def send_trailers(tmp_path: Path, trailers: list[bytes]) -> tuple[int, bytes]:
    async with gateway({}, tmp_path) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(HEAD + FIRST_CHUNK)
        with contextlib.suppress(ConnectionError):  # the gateway may stop reading, as it should
            for part in trailers:
                writer.write(part)
                await writer.drain()
            writer.write(b"\r\n")
            await writer.drain()
        try:
            return await read_response(reader)
        finally:
            writer.close()


async def test_megabytes_of_trailer_lines_are_refused_at_the_head_bound(tmp_path: Path) -> None:
    line = b"x-trailer: " + b"a" * 1000 + b"\r\n"
    status, body = await send_trailers(tmp_path, [line * 64] * 128)  # 8 MB of trailers
    assert status == 431
    assert json_body(body)["error"]["code"] == "headers_too_large"


async def test_one_endless_trailer_line_is_refused_at_the_head_bound(tmp_path: Path) -> None:
    status, body = await send_trailers(tmp_path, [b"x-trailer: "] + [b"a" * 65536] * 128)
    assert status == 431
    assert json_body(body)["error"]["code"] == "headers_too_large"


async def test_small_trailers_are_read_and_the_request_answered(tmp_path: Path) -> None:
    status, body = await send_trailers(tmp_path, [b"x-checksum: abc\r\n"])
    assert status == 404  # the request itself was read and answered: an unknown model
    assert json_body(body)["error"]["code"] == "model_not_found"
