"""Tool calling on both real engines through the OpenAI SDK, on the tiny model, whose chat
template speaks Hermes' format. On vLLM (CPU build) the replica of the chat stack runs
``tool_call_parser: auto``, reads that template and runs vLLM's ``hermes`` parser (the model card
says so); on MLX the generation server reads calls with mlx-lm's parser for the model's format
and holds a named or ``required`` choice to a schema with llguidance.

The model's weights are random, so nothing here asserts on words: a named or ``required``
``tool_choice`` is constrained by the engine's guided decoding (the arguments too, for a function
marked ``strict``, as OpenAI's structured outputs), and what comes back must be a parsed call
whose arguments satisfy the tool's schema; an agent's second turn must be answered. Each test
runs on both engines (``stack``, tests/integration/serving/conftest.py) but the model card's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from factories import TOOL_TURN
from local_stack import Stack, Stacks

pytestmark = pytest.mark.integration

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Oslo", "Lima"]},
        "unit": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": WEATHER_PARAMETERS,
            "strict": True,  # as with OpenAI: the arguments are held to the schema
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "enum": ["Oslo", "Lima"]}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
]
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
QUESTION = [{"role": "user", "content": "What is the weather in Oslo?"}]
# Enough for the longest call the schemas allow (a cut-off call would not parse), and with the
# prompt within the stack's 512 tokens of context.
MAX_TOKENS = 100


@pytest.fixture
def vllm(stacks: Stacks) -> Stack:
    return stacks.get("chat")


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{stack.url}/v1", api_key="unused", max_retries=0, timeout=120
    ) as sdk:
        yield sdk


def assert_calls_satisfy_schemas(calls: Any, names: set[str]) -> None:
    assert calls, "no tool call was returned"
    for call in calls:
        assert call.type == "function" and call.id
        assert call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def ask_with_tools(
    client: openai.OpenAI,
    stack: Stack,
    tool_choice: Any,
    *,
    seed: int,
    max_tokens: int = MAX_TOKENS,
    **extra: Any,
) -> Any:
    """The question with every tool offered, under ``tool_choice``."""
    return client.chat.completions.create(
        model=stack.model,
        messages=QUESTION,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice=tool_choice,
        max_tokens=max_tokens,
        seed=seed,
        **extra,
    )


def test_model_card_says_auto_chose_hermes_from_the_chat_template(vllm: Stack) -> None:
    card = httpx.get(f"{vllm.url}/v1/models/{vllm.model}", timeout=30).json()
    assert card["tool_calling"]["parser"] == "hermes", card
    assert "<tool_call>" in card["tool_calling"]["reason"], card


def test_named_tool_choice_returns_that_call_with_schema_valid_arguments(
    client: openai.OpenAI, stack: Stack
) -> None:
    reply = ask_with_tools(
        client,
        stack,
        {"type": "function", "function": {"name": "get_weather"}},
        seed=1,
    )
    calls = reply.choices[0].message.tool_calls
    assert_calls_satisfy_schemas(calls, {"get_weather"})


def test_required_tool_choice_returns_calls_of_listed_tools(
    client: openai.OpenAI, stack: Stack
) -> None:
    reply = ask_with_tools(
        client,
        stack,
        "required",
        max_tokens=2 * MAX_TOKENS,  # random weights call again and again: room for a few
        seed=2,
    )
    assert_calls_satisfy_schemas(reply.choices[0].message.tool_calls, set(SCHEMAS))


def test_named_tool_choice_streams_the_call(client: openai.OpenAI, stack: Stack) -> None:
    stream = ask_with_tools(
        client,
        stack,
        {"type": "function", "function": {"name": "get_time"}},
        seed=3,
        stream=True,
    )
    name, arguments = "", ""
    for chunk in stream:
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += (delta_call.function and delta_call.function.name) or ""
            arguments += (delta_call.function and delta_call.function.arguments) or ""
    assert name == "get_time"
    jsonschema.validate(json.loads(arguments), SCHEMAS["get_time"])


def test_an_agents_second_turn_is_answered(client: openai.OpenAI, stack: Stack) -> None:
    """The history an agent sends after running the tool: the assistant's call, the tool's
    result, and the tools again (``tool_choice`` auto, as SDKs leave it)."""
    first = ask_with_tools(
        client,
        stack,
        {"type": "function", "function": {"name": "get_weather"}},
        seed=4,
    )
    (call,) = first.choices[0].message.tool_calls or []
    history = [
        *QUESTION,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 12}'},
    ]
    second = client.chat.completions.create(
        model=stack.model,
        messages=history,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        max_tokens=16,
        seed=5,
    )
    choice = second.choices[0]
    assert choice.finish_reason in {"stop", "length", "tool_calls"}
    assert choice.message.role == "assistant"
    assert choice.message.content is not None or choice.message.tool_calls
    assert second.usage is not None and second.usage.prompt_tokens > 40  # the history was read


def test_an_agents_second_turn_streams(client: openai.OpenAI, stack: Stack) -> None:
    history = [*QUESTION, *TOOL_TURN]
    stream = client.chat.completions.create(
        model=stack.model,
        messages=history,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="auto",
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"stop", "length", "tool_calls"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stream": "yes"}, "stream"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
    ],
)
def test_client_mistakes_reaching_the_engine_are_400(
    stack: Stack, fields: dict[str, Any], param: str
) -> None:
    body = {"model": stack.model, "messages": QUESTION, "max_tokens": 4, **fields}
    reply = httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error


BAD_SCHEMA_TOOL = {
    "type": "function",
    "function": {"name": "broken", "parameters": {"type": "objekt", "properties": 7}},
}


@pytest.mark.parametrize(
    "fields",
    [
        {
            "tools": [BAD_SCHEMA_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "broken"}},
        },
        {"tools": [BAD_SCHEMA_TOOL], "tool_choice": "required"},
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "nope"}},
            }
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ]
        },
        {"messages": [{"role": "user", "content": [{"type": "banana"}]}]},
        {"logit_bias": {"not-a-token": 5}},
        {"logit_bias": {"99999999": 5}},
        {"guided_json": {"type": "nope"}},
        {"guided_regex": "("},
        {
            "messages": [
                *QUESTION,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "not json"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": "x"},
            ],
            "tools": TOOLS,
        },
    ],
    ids=[
        "bad-schema-named",
        "bad-schema-required",
        "bad-json-schema",
        "image-part",
        "unknown-part",
        "logit-bias-key",
        "logit-bias-id",
        "guided-json",
        "guided-regex",
        "history-bad-arguments",
    ],
)
def test_odd_requests_are_answered_or_refused_naming_a_field_never_a_500(
    stack: Stack, fields: dict[str, Any]
) -> None:
    body = {"model": stack.model, "messages": QUESTION, "max_tokens": 4, **fields}
    reply = httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code in (200, 400), reply.text
    if reply.status_code == 400:
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"], error
