"""The MLX engine against a scripted mlx-lm server (a test double): HTTP, errors, cut streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from local_backend import chat_backend, served
from modelgrid_serving.config import AppConfig
from modelgrid_serving.engines.events import DONE, Delta
from modelgrid_serving.engines.mlx import MLXEngine
from modelgrid_serving.errors import EngineError, InvalidRequest, ModelNotReady
from modelgrid_serving.protocol import ChatCompletionRequest

pytestmark = pytest.mark.integration

CHAT = ChatCompletionRequest.model_validate(
    {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
)
STREAM = CHAT.model_copy(update={"stream": True})


class FakeCounter:
    eos_token_ids = frozenset({2})

    def count_chat(self, messages: list[dict[str, Any]], tools: Any) -> int:
        return 5

    def count_text(self, prompt: str) -> int:
        return 5


def chunk(text: str, finish: str | None = None) -> bytes:
    body = {
        "object": "chat.completion.chunk",
        "model": "default_model",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


class Script:
    """What the fake server answers next, and what it was sent."""

    def __init__(self) -> None:
        self.reply: web.StreamResponse | None = None
        self.frames: list[bytes] = []
        self.sent: list[dict[str, Any]] = []


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Script]]:
    script = Script()

    async def chat(request: web.Request) -> web.StreamResponse:
        script.sent.append(await request.json())
        if script.reply is not None:
            return script.reply
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        for frame in script.frames:
            await stream.write(frame)
        return stream

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = chat_backend(chat)
    app.router.add_get("/health", health)
    async with served(app) as url:
        yield url, script


def engine_for(url: str) -> MLXEngine:
    config = AppConfig.model_validate(
        {
            "model_name": "tiny",
            "model_source": "/models/tiny",
            "max_model_len": 64,
            "pool": {
                "name": "mac",
                "accelerator": "apple",
                "engine": "mlx",
                "min_replicas": 1,
                "max_replicas": 1,
                "mlx_server_url": url,
            },
        }
    )
    return MLXEngine(config, counter=FakeCounter())


async def test_mlx_engine_stream_drops_keepalives_and_sends_the_mlx_model(
    server: tuple[str, Script],
) -> None:
    url, script = server
    split = chunk("a")  # torn across two writes: one event all the same
    script.frames = [b": keepalive 1/2\n\n", split[:9], split[9:], chunk("b", "length")]
    script.frames.append(b"data: [DONE]\n\n")
    engine = engine_for(url)
    try:
        await engine.check_health()
        events = [e async for e in await engine.chat(STREAM)]  # type: ignore[union-attr]
    finally:
        await engine.close()
    assert len(events) == 3 and events[-1] is DONE
    assert all(isinstance(e, Delta) and '"model":"tiny"' in e.chunk for e in events[:-1])
    assert script.sent[0]["model"] == "/models/tiny"


async def test_mlx_engine_stream_cut_before_done_is_an_engine_error(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.frames = [chunk("a")]
    engine = engine_for(url)
    try:
        events = await engine.chat(STREAM)
        with pytest.raises(EngineError):
            async for _ in events:  # type: ignore[union-attr]
                pass
    finally:
        await engine.close()


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (400, "top_k must be at least 0", InvalidRequest),
        (404, "Conversation roles must alternate", InvalidRequest),
        (404, "generation thread died", EngineError),
    ],
)
async def test_mlx_engine_maps_server_errors(
    server: tuple[str, Script], status: int, message: str, error: type[Exception]
) -> None:
    url, script = server
    script.reply = web.json_response({"error": message}, status=status)
    engine = engine_for(url)
    try:
        with pytest.raises(error):
            await engine.chat(CHAT)
    finally:
        await engine.close()


async def test_mlx_engine_unreachable_server_is_not_ready() -> None:
    engine = engine_for("http://127.0.0.1:9")  # discard port: nothing listens
    try:
        with pytest.raises(ModelNotReady):
            await engine.chat(CHAT)
    finally:
        await engine.close()
