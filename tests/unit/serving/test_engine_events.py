"""The engines' stream events: what a chunk is (by parsing it), the end of a stream, vLLM's frames."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from modelgrid_serving.engines.events import (
    DONE,
    Delta,
    Done,
    StreamError,
    StreamEvent,
    Usage,
    chunk_event,
    parse_chunk,
    until_end,
)
from modelgrid_serving.engines.vllm import _events as vllm_events
from modelgrid_serving.errors import ContextLengthExceeded, EngineError, InvalidRequest

pytestmark = pytest.mark.unit

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def text(chunk: dict[str, Any]) -> str:
    return json.dumps(chunk, separators=(",", ":"))


def test_events_are_frozen_values() -> None:
    delta = Delta('{"choices":[]}')
    with pytest.raises(dataclasses.FrozenInstanceError):
        delta.chunk = "x"  # type: ignore[misc]
    assert delta == Delta('{"choices":[]}') and Usage(1, 2, "u") == Usage(1, 2, "u")
    assert Done() == DONE


def test_chunk_event_usage_chunk_is_usage() -> None:
    chunk = {"choices": [], "usage": USAGE}
    assert chunk_event(chunk, text(chunk)) == Usage(7, 3, text(chunk))


def test_chunk_event_with_choices_is_a_delta_even_with_usage() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "a"}}], "usage": USAGE}  # continuous
    assert chunk_event(chunk, text(chunk)) == Delta(text(chunk))


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": [{"index": 0, "delta": {"content": '{"choices":[],"usage":{}}'}}]},
        {"choices": [], "extension": {"usage": USAGE}},  # a usage key, but not the chunk's
        {"choices": [{"index": 0, "delta": {"content": "error"}, "finish_reason": None}]},
    ],
)
def test_parse_chunk_decides_by_the_parsed_chunk_not_its_text(chunk: dict[str, Any]) -> None:
    assert parse_chunk(text(chunk)) == Delta(text(chunk))


def test_chunk_event_error_body_is_a_stream_error_mapped_to_our_classes() -> None:
    event = parse_chunk(text({"error": {"message": "too long: maximum context", "code": 400}}))
    assert isinstance(event, StreamError) and isinstance(event.error, ContextLengthExceeded)
    event = parse_chunk(text({"error": {"message": "bad", "code": 400, "param": "top_k"}}))
    assert isinstance(event, StreamError) and isinstance(event.error, InvalidRequest)
    assert event.error.param == "top_k"
    event = parse_chunk(text({"error": {"message": "boom", "code": "oops"}}))
    assert isinstance(event, StreamError) and isinstance(event.error, EngineError)


def test_parse_chunk_refuses_what_is_not_a_json_object() -> None:
    with pytest.raises(EngineError):
        parse_chunk('"usage"')


async def collect(events: AsyncGenerator[StreamEvent, None]) -> list[StreamEvent]:
    return [event async for event in events]


async def scripted(*events: StreamEvent) -> AsyncGenerator[StreamEvent, None]:
    for event in events:
        yield event


async def test_until_end_stops_at_done_and_closes_the_source() -> None:
    closed = []

    async def source() -> AsyncGenerator[StreamEvent, None]:
        try:
            yield Delta("a")
            yield DONE
            yield Delta("after the end")
        finally:
            closed.append(True)

    assert await collect(until_end(source(), source="test")) == [Delta("a"), DONE]
    assert closed == [True]


async def test_until_end_stops_at_an_error() -> None:
    error = StreamError(EngineError("x"))
    events = until_end(scripted(Delta("a"), error, DONE), source="test")
    assert await collect(events) == [Delta("a"), error]


async def test_until_end_a_source_that_stops_early_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="The test engine ended the stream early"):
        await collect(until_end(scripted(Delta("a")), source="The test engine"))


async def test_vllm_frames_become_events() -> None:
    chunk = text({"choices": [{"index": 0, "delta": {"content": "a"}}]})
    usage = text({"choices": [], "usage": USAGE})

    async def rest() -> AsyncGenerator[str, None]:
        yield f"data: {usage}\n\n"
        yield "data: [DONE]\n\n"

    events = await collect(vllm_events(f"data: {chunk}\n\n", rest()))
    assert events == [Delta(chunk), Usage(7, 3, usage), DONE]


async def test_vllm_error_frame_ends_the_stream_as_a_stream_error() -> None:
    error = json.dumps({"error": {"message": "boom", "type": "x", "param": None, "code": 500}})

    async def rest() -> AsyncGenerator[str, None]:
        yield f"data: {error}\n\n"
        yield "data: [DONE]\n\n"

    chunk = text({"choices": [{"index": 0, "delta": {"content": "a"}}]})
    events = await collect(until_end(vllm_events(f"data: {chunk}\n\n", rest()), source="vLLM"))
    assert events[0] == Delta(chunk)
    assert len(events) == 2 and isinstance(events[1], StreamError)
    assert events[1].error.message == "boom"
