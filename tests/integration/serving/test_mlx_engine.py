"""What only the MLX engine does: each parameter it cannot honour refused by name, a schema its
grammar library cannot use refused naming where it came from, the sidecar kept alive by the
translation, and the MLX replica's service routes and metrics.

The shared suite (test_openai_sdk.py, test_http.py) runs on MLX too; this file covers the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from local_stack import Stack

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.fixture
def http(mlx_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mlx_stack.url, timeout=60) as client:
        yield client


def error_of(reply: httpx.Response, check_schema: Any) -> dict[str, Any]:
    assert reply.status_code == 400, reply.text
    check_schema("ErrorResponse", reply.json())
    return dict(reply.json()["error"])


@pytest.mark.parametrize(
    ("route", "fields", "param"),
    [
        ("/v1/completions", {"prompt": "x", "n": 17}, "n"),
        ("/v1/completions", {"prompt": "x", "logprobs": 1}, "logprobs"),
        ("/v1/completions", {"prompt": "x", "best_of": 2}, "best_of"),
        ("/v1/completions", {"prompt": "x", "suffix": "end"}, "suffix"),
        ("/v1/completions", {"prompt": [1, 2, 3]}, "prompt"),
        ("/v1/chat/completions", {"messages": MESSAGES, "min_tokens": 3}, "min_tokens"),
        (
            "/v1/chat/completions",
            {
                "messages": MESSAGES,
                "tools": TOOLS,
                "tool_choice": "required",
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
        ("/v1/chat/completions", {"messages": MESSAGES, "guided_regex": "a+"}, "guided_regex"),
    ],
)
def test_mlx_refuses_what_it_cannot_honour(
    http: httpx.Client,
    mlx_stack: Stack,
    check_schema: Any,
    route: str,
    fields: dict[str, Any],
    param: str,
) -> None:
    reply = http.post(route, json={"model": mlx_stack.model, "max_tokens": 2, **fields})
    error = error_of(reply, check_schema)
    assert error["param"] == param and error["code"] == "unsupported_parameter"
    assert f"'{param}'" in error["message"] and "MLX" in error["message"]


def _ask_in_parts(
    http: httpx.Client, stack: Stack, content: list[dict[str, Any]]
) -> httpx.Response:
    """A two-token chat completion whose one user message is ``content`` (content parts)."""
    messages = [{"role": "user", "content": content}]
    body = {"model": stack.model, "max_tokens": 2, "messages": messages}
    return http.post("/v1/chat/completions", json=body)


def test_mlx_refuses_image_parts_naming_the_part(
    http: httpx.Client, mlx_stack: Stack, check_schema: Any
) -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    reply = _ask_in_parts(http, mlx_stack, content)
    assert error_of(reply, check_schema)["param"] == "messages.0.content.1.type"


def test_mlx_text_parts_are_joined(http: httpx.Client, mlx_stack: Stack) -> None:
    content = [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}]
    reply = _ask_in_parts(http, mlx_stack, content)
    assert reply.status_code == 200, reply.text


def test_mlx_sidecar_survives_what_would_kill_it(http: httpx.Client, mlx_stack: Stack) -> None:
    """A list prompt kills mlx-lm's generation thread for good; ours never reaches it."""
    assert (
        http.post(
            "/v1/completions", json={"model": mlx_stack.model, "prompt": ["a", "b"]}
        ).status_code
        == 400
    )
    assert http.get("/health").status_code == 200
    reply = http.post(
        "/v1/completions", json={"model": mlx_stack.model, "prompt": "a", "max_tokens": 2}
    )
    assert reply.status_code == 200, reply.text


def test_mlx_stream_is_normalised(http: httpx.Client, mlx_stack: Stack, check_schema: Any) -> None:
    """No keepalive comments, one id, our created and name, chunk objects throughout."""
    body = {
        "model": mlx_stack.alias,
        "messages": MESSAGES,
        "max_tokens": 5,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        lines = [line for line in reply.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    for chunk in chunks:
        check_schema("CreateChatCompletionStreamResponse", chunk)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {mlx_stack.alias}
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_mlx_root_health_and_metrics(http: httpx.Client, mlx_stack: Stack) -> None:
    root = http.get("/").json()
    assert root["engine"] == "mlx" and root["engine_version"]
    assert http.get("/health").json() == {"status": "ok"}
    body = {"model": mlx_stack.model, "messages": MESSAGES, "max_tokens": 4, "ignore_eos": True}
    assert http.post("/v1/chat/completions", json={**body, "stream": True}).status_code == 200
    samples = dict(
        line.rsplit(" ", 1)
        for line in http.get("/metrics").text.splitlines()
        if line and not line.startswith("#")
    )
    generated = [v for k, v in samples.items() if "generation_tokens_total{" in k]
    first_token = [v for k, v in samples.items() if "time_to_first_token_seconds_count{" in k]
    assert generated and float(generated[0]) >= 4
    assert first_token and float(first_token[0]) >= 1


def test_mlx_models_card_names_the_context(http: httpx.Client, mlx_stack: Stack) -> None:
    card = http.get(f"/v1/models/{mlx_stack.alias}").json()
    assert card["root"] == mlx_stack.model and card["max_model_len"] == mlx_stack.max_model_len


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "nope"}},
                }
            },
            "response_format.json_schema",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "strict": True,
                            "parameters": {"type": "object", "properties": {"a": {"type": 7}}},
                        },
                    }
                ],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
            },
            "tools.0.function.parameters",
        ),
        ({"logit_bias": {"99999999": 5}}, "logit_bias"),
    ],
)
def test_mlx_refuses_a_schema_or_token_it_cannot_use_naming_the_field(
    http: httpx.Client, mlx_stack: Stack, check_schema: Any, fields: dict[str, Any], param: str
) -> None:
    body = {"model": mlx_stack.model, "messages": MESSAGES, "max_tokens": 4, **fields}
    error = error_of(http.post("/v1/chat/completions", json=body), check_schema)
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert http.get("/health").status_code == 200  # and the server serves on
