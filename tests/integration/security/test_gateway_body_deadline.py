"""A client sends its request body a few bytes at a time, or stops halfway: the gateway cuts it
off with an OpenAI-shaped 408 (the body's minimum rate, its deadline), before the request reaches
the key's limits, instead of holding the connection and its task for as long as it pleases."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from integration.security.gateway_attack import gateway, json_body, read_response

pytestmark = [pytest.mark.integration, pytest.mark.security]

BODY = b'{"model": "llama", "messages": [{"role": "user", "content": "' + b"x" * 900 + b'"}]}'
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-length: %d\r\n\r\n" % len(BODY)
MODELS = [{"name": "llama", "backends": [{"url": "http://127.0.0.1:9/v1"}]}]


async def trickle(port: int, first: bytes, rest: bytes, every_s: float) -> tuple[int, bytes, float]:
    """Send the head and ``first`` at once, then ``rest`` a byte every ``every_s``; the answer
    and how long it took to come."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEAD + first)

    async def drip() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in rest:
                await asyncio.sleep(every_s)
                writer.write(bytes([byte]))

    dripping = asyncio.create_task(drip())
    try:
        status, body = await read_response(reader)
        return status, body, time.monotonic() - started
    finally:
        dripping.cancel()
        writer.close()


async def test_a_body_trickled_byte_by_byte_is_cut_off_at_the_minimum_rate(tmp_path: Path) -> None:
    async with gateway({"models": MODELS}, tmp_path) as gw:  # default rate: 1024 bytes/s
        status, body, took = await trickle(gw.port, BODY[:10], BODY[10:], every_s=0.1)
    error = json_body(body)["error"]
    assert (status, error["code"], error["type"]) == (
        408,
        "request_timeout",
        "invalid_request_error",
    )
    assert "bytes/s" in error["message"]
    assert took < 8.0  # at the first sweep after its 5 s of grace, not at the 30 s deadline


async def test_a_body_that_stops_halfway_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    config = {"models": MODELS, "limits": {"body_timeout_s": 2, "min_body_rate_bytes_s": 0}}
    async with gateway(config, tmp_path) as gw:
        status, body, took = await trickle(gw.port, BODY[: len(BODY) // 2], b"", every_s=0)
    assert (status, json_body(body)["error"]["code"]) == (408, "request_timeout")
    assert "within 2 seconds" in json_body(body)["error"]["message"]
    assert 2.0 <= took < 4.5


async def test_a_body_sent_at_a_normal_pace_is_read(tmp_path: Path) -> None:
    async with gateway({"models": MODELS}, tmp_path) as gw:
        # most of it at once, the rest after a pause (a lost packet sent again): within the
        # grace the rate is not judged
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(HEAD + BODY[:700])
        await asyncio.sleep(1.2)
        writer.write(BODY[700:])
        status, _ = await read_response(reader)
        writer.close()
    assert status == 502  # read whole and sent on: its backend is not there
