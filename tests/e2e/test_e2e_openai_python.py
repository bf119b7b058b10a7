"""The OpenAI Python SDK (pinned in pyproject's ``e2e`` extra) through the gateway, once per pool
and once through the mixed name: sync and async chats, streams, tool calls under a named and a
``required`` ``tool_choice`` with the results sent back and a final answer, and a JSON-schema
``response_format`` parsed into a pydantic model by ``client.chat.completions.parse`` (the
successor of ``client.beta.chat.completions.parse``)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from e2e_support import (
    ANSWER_TOKENS,
    QUESTION,
    REQUIRED_TOKENS,
    SEED,
    TOOL_TOKENS,
    UNTIL_LENGTH,
    Forecast,
    GetTime,
    GetWeather,
    Target,
    weather_report,
)

pytestmark = pytest.mark.e2e

ASKED: list[Any] = [{"role": "user", "content": QUESTION}]
TOOLS = [openai.pydantic_function_tool(GetWeather), openai.pydantic_function_tool(GetTime)]
"""Strict function tools made by the SDK from pydantic models (their arguments come back parsed)."""
ARGUMENTS = {"GetWeather": GetWeather, "GetTime": GetTime}
CHAT: dict[str, Any] = {"messages": ASKED, "max_tokens": ANSWER_TOKENS, "extra_body": UNTIL_LENGTH}
"""The chat the sync and the async client both send: a reply of exactly ANSWER_TOKENS tokens."""
STREAMED: dict[str, Any] = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
"""The same chat streamed, closed by a usage chunk."""


def test_e2e_python_sdk_lists_the_model_chats_and_streams(target: Target) -> None:
    with target.client() as client:
        assert target.model in [m.id for m in client.models.list()]
        reply = client.chat.completions.create(model=target.model, **CHAT)
        stream = client.chat.completions.create(model=target.model, **STREAMED)
        chunks = list(stream)
    (choice,) = reply.choices
    assert reply.model == target.model
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == ANSWER_TOKENS
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = chunks[-1].usage  # the usage chunk closes the stream
    assert usage is not None and usage.completion_tokens == ANSWER_TOKENS


def test_e2e_python_sdk_streams_a_parsed_answer_with_the_stream_helper(target: Target) -> None:
    with (
        target.client() as client,
        client.chat.completions.stream(
            model=target.model,
            messages=[{"role": "user", "content": "Forecast for Lima, as JSON."}],
            response_format=Forecast,
            max_tokens=TOOL_TOKENS,
            seed=SEED,
        ) as stream,
    ):
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    (choice,) = final.choices
    assert len(deltas) > 1 and "".join(deltas) == choice.message.content
    assert isinstance(choice.message.parsed, Forecast)
    assert choice.finish_reason == "stop"


async def test_e2e_python_async_sdk_chats_and_streams(target: Target) -> None:
    async with target.async_client() as client:
        reply = await client.chat.completions.create(model=target.model, **CHAT)
        stream = await client.chat.completions.create(model=target.model, **STREAMED)
        text, finish, usage = "", None, None
        async for chunk in stream:
            assert chunk.model == target.model
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
            usage = chunk.usage or usage
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "length"
    assert text and finish == "length"
    assert usage is not None and usage.completion_tokens == ANSWER_TOKENS


def _call_tools(client: openai.OpenAI, target: Target, tool_choice: Any, max_tokens: int) -> Any:
    """An agent's first turn: the question, with :data:`TOOLS` offered under ``tool_choice``
    (``parse``: the calls' arguments come back as the tools' pydantic models)."""
    return client.chat.completions.parse(
        model=target.model,
        messages=ASKED,
        tools=TOOLS,
        tool_choice=tool_choice,
        max_tokens=max_tokens,
        seed=SEED,
    )


def _answer_after_tools(client: openai.OpenAI, target: Target, first: Any) -> Any:
    """Run every call of ``first`` (its arguments already parsed by the SDK), send the results
    back in an agent's second turn, and return the final answer (``tool_choice: "none"``: the
    tools are still offered, as agents do, but the answer is text)."""
    message = first.choices[0].message
    results = [
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": weather_report(call.function.parsed_arguments),
        }
        for call in message.tool_calls
    ]
    return client.chat.completions.create(
        model=target.model,
        messages=[*ASKED, message.model_dump(exclude_none=True), *results],
        tools=TOOLS,
        tool_choice="none",
        max_tokens=ANSWER_TOKENS,
        extra_body=UNTIL_LENGTH,
    )


def _assert_answered(client: openai.OpenAI, target: Target, final: Any) -> None:
    """``final`` is a text answer, to a prompt that holds more than the question: the call and
    its result were read."""
    (choice,) = final.choices
    assert choice.message.content and not choice.message.tool_calls, choice.message
    assert choice.finish_reason == "length"
    question = client.chat.completions.create(model=target.model, messages=ASKED, max_tokens=1)
    assert question.usage is not None and final.usage is not None
    assert final.usage.prompt_tokens > question.usage.prompt_tokens


def test_e2e_python_sdk_named_tool_choice_round_trip(target: Target) -> None:
    with target.client() as client:
        named = {"type": "function", "function": {"name": "GetWeather"}}
        first = _call_tools(client, target, named, TOOL_TOKENS)
        (call,) = first.choices[0].message.tool_calls or []
        assert call.function.name == "GetWeather"
        assert isinstance(call.function.parsed_arguments, GetWeather)
        assert first.choices[0].finish_reason in {"tool_calls", "stop"}
        _assert_answered(client, target, _answer_after_tools(client, target, first))


def test_e2e_python_sdk_required_tool_choice_round_trip(target: Target) -> None:
    with target.client() as client:
        first = _call_tools(client, target, "required", REQUIRED_TOKENS)
        calls = first.choices[0].message.tool_calls or []
        assert calls, first.choices[0].message
        for call in calls:
            assert isinstance(call.function.parsed_arguments, ARGUMENTS[call.function.name])
        _assert_answered(client, target, _answer_after_tools(client, target, first))


def test_e2e_python_sdk_parses_a_json_schema_answer(target: Target) -> None:
    with target.client() as client:
        reply = client.chat.completions.parse(
            model=target.model,
            messages=[{"role": "user", "content": "Forecast for Lima, as JSON."}],
            response_format=Forecast,
            max_tokens=TOOL_TOKENS,
            seed=SEED,
        )
    (choice,) = reply.choices
    assert isinstance(choice.message.parsed, Forecast), choice.message
    assert Forecast.model_validate_json(choice.message.content or "") == choice.message.parsed
