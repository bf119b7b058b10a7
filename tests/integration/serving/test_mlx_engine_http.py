"""The MLX engine against a scripted generation server (a test double): HTTP, the n
generations of one request, errors, cut streams."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from local_backend import served
from modelgrid_serving.config import AppConfig
from modelgrid_serving.engines.events import DONE, Delta, Usage
from modelgrid_serving.engines.mlx import MLXEngine
from modelgrid_serving.errors import EngineError, InvalidRequest, ModelNotReady
from modelgrid_serving.protocol import ChatCompletionRequest

pytestmark = pytest.mark.integration

CHAT = ChatCompletionRequest.model_validate(
    {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
)
STREAM = CHAT.model_copy(update={"stream": True})


class FakeEncoder:
    eos_token_ids = frozenset({2})

    def encode_chat(self, messages: list[dict[str, Any]], tools: Any) -> list[int]:
        return [1, 2, 3, 4, 5]

    def encode_text(self, prompt: str) -> list[int]:
        return [1, 2, 3, 4, 5]


def lines(*objects: dict[str, Any]) -> list[bytes]:
    return [json.dumps(o).encode() + b"\n" for o in objects]


class Script:
    """What the fake server answers next, and what it was sent."""

    def __init__(self) -> None:
        self.reply: web.StreamResponse | None = None
        self.frames: list[bytes] = []
        self.sent: list[dict[str, Any]] = []


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Script]]:
    script = Script()

    async def generate(request: web.Request) -> web.StreamResponse:
        script.sent.append(await request.json())
        if script.reply is not None:
            return script.reply
        stream = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await stream.prepare(request)
        for frame in script.frames:
            await stream.write(frame)
        return stream

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/generate", generate)
    app.router.add_get("/health", health)
    async with served(app) as url:
        yield url, script


@contextlib.asynccontextmanager
async def engine_at(url: str) -> AsyncIterator[MLXEngine]:
    """An MLX engine whose generation server is at ``url``, closed when the test leaves it."""
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
    engine = MLXEngine(config, encoder=FakeEncoder())
    try:
        yield engine
    finally:
        await engine.close()


async def test_mlx_engine_stream_reads_lines_torn_across_writes(
    server: tuple[str, Script],
) -> None:
    url, script = server
    first = lines({"text": "a"})[0]  # torn across two writes: one line all the same
    script.frames = [
        first[:5],
        first[5:],
        *lines({"finish_reason": "length", "completion_tokens": 2}),
    ]
    async with engine_at(url) as engine:
        await engine.check_health()
        events = [e async for e in await engine.chat(STREAM)]  # type: ignore[union-attr]
    assert events[-1] is DONE and isinstance(events[-2], Usage)
    assert (events[-2].prompt_tokens, events[-2].completion_tokens) == (5, 2)
    deltas = [json.loads(e.chunk) for e in events if isinstance(e, Delta)]
    assert [d["choices"][0]["delta"] for d in deltas] == [
        {"role": "assistant", "content": ""},
        {"content": "a"},
        {},
    ]
    assert all(d["model"] == "tiny" for d in deltas)
    assert script.sent[0]["prompt"] == [1, 2, 3, 4, 5] and script.sent[0]["max_tokens"] == 2


async def test_mlx_engine_n_choices_are_n_generations_in_one_reply(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.frames = lines({"text": "x"}, {"finish_reason": "stop", "completion_tokens": 1})
    async with engine_at(url) as engine:
        request = CHAT.model_copy(update={"n": 3, "seed": 10})
        reply = await engine.chat(request)
    assert isinstance(reply, dict)
    assert [c["index"] for c in reply["choices"]] == [0, 1, 2]
    assert reply["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert sorted(body["seed"] for body in script.sent) == [10, 11, 12]


async def test_mlx_engine_stream_cut_before_its_end_is_an_engine_error(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.frames = lines({"text": "a"})
    async with engine_at(url) as engine:
        events = await engine.chat(STREAM)
        with pytest.raises(EngineError):
            async for _ in events:  # type: ignore[union-attr]
                pass


@pytest.mark.parametrize(
    "frames",
    [
        [b"not json\n"],
        [b"[1, 2]\n"],
        [b'{"text": "' + b"x" * 300_000 + b'"}\n'],
        lines({"text": "a"}, {"error": "generation failed: boom"}),
    ],
    ids=["not-json", "not-an-object", "too-long", "failed-mid-generation"],
)
async def test_mlx_engine_unreadable_lines_and_failures_are_an_engine_error(
    server: tuple[str, Script], frames: list[bytes]
) -> None:
    url, script = server
    script.frames = frames
    async with engine_at(url) as engine:
        with pytest.raises(EngineError):
            await engine.chat(CHAT)


@pytest.mark.parametrize(
    ("status", "body", "error", "param"),
    [
        (400, {"error": "top_k must be at least 0", "field": "top_k"}, InvalidRequest, "top_k"),
        (
            400,
            {"error": "the JSON schema cannot be used", "field": "json_schema"},
            InvalidRequest,
            "response_format.json_schema",
        ),
        (500, {"error": "boom"}, EngineError, None),
    ],
)
async def test_mlx_engine_maps_server_refusals(
    server: tuple[str, Script],
    status: int,
    body: dict[str, Any],
    error: type[Exception],
    param: str | None,
) -> None:
    url, script = server
    script.reply = web.json_response(body, status=status)
    # a schema the server cannot use comes from the field the request named it in
    request = ChatCompletionRequest.model_validate(
        {**CHAT.model_dump(exclude_none=True), "response_format": {"type": "json_object"}}
    )
    async with engine_at(url) as engine:
        with pytest.raises(error) as info:
            await engine.chat(request)
    assert getattr(info.value, "param", None) == param


async def test_mlx_engine_unreachable_server_is_not_ready() -> None:
    async with engine_at("http://127.0.0.1:9") as engine:  # discard port: nothing listens
        with pytest.raises(ModelNotReady):
            await engine.chat(CHAT)
