"""The gateway's relay reads streams by whole events, however a backend cuts its writes: usage and
``[DONE]`` split across writes and CRLF line ends are read; an event that never ends is refused."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from aiohttp import web
from local_backend import chat_backend, served
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.sse import MAX_EVENT_BYTES
from unit.gateway.test_gateway_asgi import call, make_gateway

pytestmark = pytest.mark.integration

Writer = Callable[[web.StreamResponse], Awaitable[None]]
DELTA = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":7}}\n\n'


@pytest.fixture
async def gateway_over() -> AsyncIterator[Callable[[Writer], Awaitable[Gateway]]]:
    """A gateway whose model ``llama`` is a backend that streams what a writer writes."""
    async with AsyncExitStack() as started:

        async def start(write: Writer) -> Gateway:
            async def stream(request: web.Request) -> web.StreamResponse:
                resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await resp.prepare(request)
                await write(resp)
                return resp

            url = await started.enter_async_context(served(chat_backend(stream)))
            app = make_gateway(
                models=[{"name": "llama", "backends": [{"url": f"{url}/v1"}]}],
                limits={"health_interval_s": 0},
            )
            await app.state.startup()
            started.push_async_callback(app.state.shutdown)
            return app

        yield start


async def stream_through(app: Gateway) -> tuple[int, bytes]:
    body = json.dumps({"model": "llama", "stream": True, "messages": []}).encode()
    status, _, out = await call(app, "POST", "/v1/chat/completions", body, stay=True)
    return status, out


def figures(app: Gateway) -> dict[str, float]:
    return app.state.live.figures("llama", now=time.monotonic())


async def test_events_split_across_writes_are_read_whole(gateway_over) -> None:
    whole = DELTA + USAGE + b"data: [DONE]\n\n"

    cuts = [whole.index(c) + len(c) for c in (b'"usage":{"prompt', b"[DO", b"NE]\n")]

    async def write(resp: web.StreamResponse) -> None:
        for start, end in zip([0, *cuts], [*cuts, len(whole)], strict=True):
            await resp.write(whole[start:end])  # usage and [DONE] torn apart
            await asyncio.sleep(0.02)  # separate reads at the gateway

    app = await gateway_over(write)
    status, out = await stream_through(app)
    assert status == 200 and out == whole
    fig = figures(app)
    assert (fig["requests_total"], fig["errors_total"]) == (1, 0)  # [DONE] was seen
    assert fig["tokens_per_s"] == 0.7  # the usage's 7 completion tokens over the 10 s window


async def test_crlf_stream_is_read_and_relayed_with_lf(gateway_over) -> None:
    async def write(resp: web.StreamResponse) -> None:
        crlf = (DELTA + USAGE + b"data: [DONE]\n\n").replace(b"\n", b"\r\n")
        await resp.write(crlf[:5])
        await asyncio.sleep(0.02)
        await resp.write(crlf[5:])

    app = await gateway_over(write)
    status, out = await stream_through(app)
    assert status == 200 and out == DELTA + USAGE + b"data: [DONE]\n\n"
    assert figures(app)["errors_total"] == 0


async def test_content_that_mentions_done_does_not_end_the_stream(gateway_over) -> None:
    mention = b'data: {"choices":[{"index":0,"delta":{"content":"[DONE]"}}]}\n\n'

    async def write(resp: web.StreamResponse) -> None:
        await resp.write(DELTA + mention)  # then the backend dies: no [DONE]

    app = await gateway_over(write)
    status, out = await stream_through(app)
    assert status == 200 and out.startswith(DELTA + mention)
    last = out[len(DELTA + mention) :].split(b"\n\n")
    assert json.loads(last[0][len(b"data: ") :])["error"]["code"] == "upstream_unavailable"
    assert last[1:] == [b"data: [DONE]", b""]
    assert figures(app)["errors_total"] == 1


async def test_an_event_that_never_ends_is_refused(gateway_over) -> None:
    async def write(resp: web.StreamResponse) -> None:
        await resp.write(DELTA + b"data: ")
        for _ in range(MAX_EVENT_BYTES // 2**20 + 2):
            await resp.write(b"x" * 2**20)  # no line end, ever

    app = await gateway_over(write)
    status, out = await stream_through(app)
    assert status == 200 and out.startswith(DELTA)
    assert len(out) < 1024  # none of the unended event was forwarded
    assert b'"upstream_unavailable"' in out and out.endswith(b"data: [DONE]\n\n")
    assert figures(app)["errors_total"] == 1
