"""The MLX engine's request translation and reply normalisation (pure functions, no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from modelgrid_serving.engines.events import DONE, Delta, StreamError, Usage
from modelgrid_serving.engines.mlx_translation import (
    NO_EOS_BIAS,
    Stamp,
    Target,
    normalise_response,
    stream_event,
    to_mlx_chat,
    to_mlx_completion,
)
from modelgrid_serving.errors import ContextLengthExceeded, EngineError, InvalidRequest
from modelgrid_serving.protocol import ChatCompletionRequest, CompletionRequest

pytestmark = pytest.mark.unit

MESSAGES = [{"role": "user", "content": "hi"}]


class FakeCounter:
    """One token per character: enough to test the limits' arithmetic."""

    eos_token_ids = frozenset({2, 7})

    def count_chat(self, messages: list[dict[str, Any]], tools: Any) -> int:
        return sum(len(m.get("content") or "") for m in messages) + 10

    def count_text(self, prompt: str) -> int:
        return len(prompt)


TARGET = Target(mlx_model="/models/tiny", max_model_len=64, counter=FakeCounter())
STAMP = Stamp(id="chatcmpl-ours", created=1700000000, model="tiny", chat=True)


def chat(**fields: Any) -> dict[str, Any]:
    request = ChatCompletionRequest.model_validate(
        {"model": "tiny", "messages": MESSAGES, **fields}
    )
    return to_mlx_chat(request, TARGET)


def completion(**fields: Any) -> dict[str, Any]:
    request = CompletionRequest.model_validate({"model": "tiny", "prompt": "hello", **fields})
    return to_mlx_completion(request, TARGET)


def test_to_mlx_chat_sends_the_mlx_model_and_openai_defaults() -> None:
    out = chat(max_tokens=5)
    assert out == {
        "model": "/models/tiny",
        "messages": MESSAGES,
        "max_tokens": 5,
        "temperature": 1.0,  # OpenAI's default; mlx-lm's server would be greedy
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "stream": False,
    }


def test_to_mlx_chat_maps_sampling_penalties_seed_and_stop() -> None:
    out = chat(
        max_tokens=5,
        temperature=0,
        top_p=0.5,
        top_k=-1,
        min_p=0.1,
        presence_penalty=1.5,
        frequency_penalty=-1,
        repetition_penalty=1.3,
        seed=-1,
        stop="o",
        logit_bias={"5": 3.0},
    )
    assert out["temperature"] == 0 and out["top_p"] == 0.5 and out["top_k"] == 0
    assert out["min_p"] == 0.1
    assert out["presence_penalty"] == 1.5 and out["presence_context_size"] == 64
    assert out["frequency_penalty"] == -1 and out["frequency_context_size"] == 64
    assert out["repetition_penalty"] == 1.3 and out["repetition_context_size"] == 64
    assert out["seed"] == 2**64 - 1  # MLX seeds with an unsigned integer
    assert out["stop"] == ["o"]
    assert out["logit_bias"] == {"5": 3.0}


def test_to_mlx_chat_ignore_eos_biases_every_eos_token_away() -> None:
    out = chat(max_tokens=5, ignore_eos=True, logit_bias={"5": 1.0})
    assert out["logit_bias"] == {"5": 1.0, "2": NO_EOS_BIAS, "7": NO_EOS_BIAS}


def test_to_mlx_chat_stream_asks_for_usage() -> None:
    out = chat(max_tokens=5, stream=True)
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_to_mlx_chat_max_completion_tokens_wins() -> None:
    assert chat(max_tokens=9, max_completion_tokens=3)["max_tokens"] == 3


def test_to_mlx_chat_without_limit_fills_the_context() -> None:
    assert chat()["max_tokens"] == 64 - (2 + 10)


def test_to_mlx_chat_text_parts_become_one_string() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    out = chat(max_tokens=1, messages=[{"role": "user", "content": parts}])
    assert out["messages"] == [{"role": "user", "content": "ab"}]


def test_to_mlx_chat_tool_choice_none_hides_the_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert "tools" not in chat(max_tokens=1, tools=tools, tool_choice="none")
    assert (
        chat(max_tokens=1, tools=tools, tool_choice="auto")["tools"][0]["function"]["name"] == "f"
    )


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice",
        ),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"min_tokens": 2}, "min_tokens"),
        ({"guided_json": {}}, "guided_json"),
        ({"logit_bias": {"x": 1.0}}, "logit_bias"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages.0.content.0.type",
        ),
    ],
)
def test_to_mlx_chat_refuses_naming_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat(max_tokens=1, **fields)
    assert info.value.param == param and info.value.status_code == 400


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2]}, "prompt"),
        ({"echo": True}, "echo"),
        ({"logprobs": 0}, "logprobs"),
        ({"best_of": 2}, "best_of"),
        ({"suffix": "x"}, "suffix"),
        ({"n": 3}, "n"),
    ],
)
def test_to_mlx_completion_refuses_naming_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        completion(max_tokens=1, **fields)
    assert info.value.param == param


def test_to_mlx_completion_accepts_harmless_defaults() -> None:
    out = completion(max_tokens=2, n=1, best_of=1, echo=False, user="u")
    assert out["prompt"] == "hello" and out["max_tokens"] == 2


def test_context_limit_names_the_limit() -> None:
    with pytest.raises(ContextLengthExceeded) as info:
        completion(prompt="x" * 64)
    assert "64" in info.value.message and info.value.param == "prompt"
    with pytest.raises(ContextLengthExceeded) as info:
        completion(max_tokens=60)
    assert "64" in info.value.message and info.value.param == "max_tokens"


def test_normalise_response_chat() -> None:
    mlx = {
        "id": "chatcmpl-theirs",
        "system_fingerprint": "0.32-Linux",
        "object": "chat.completion",
        "model": "default_model",
        "created": 1,
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": "x"},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    assert normalise_response(mlx, STAMP) == {
        "id": "chatcmpl-ours",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "logprobs": None,
                "message": {"role": "assistant", "content": "x", "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def test_normalise_response_completion() -> None:
    stamp = Stamp(id="cmpl-ours", created=5, model="tiny", chat=False)
    mlx = {"choices": [{"index": 0, "finish_reason": "stop", "text": "ab"}], "usage": None}
    out = normalise_response(mlx, stamp)
    assert out["object"] == "text_completion" and out["id"] == "cmpl-ours"
    assert out["choices"] == [{"index": 0, "finish_reason": "stop", "logprobs": None, "text": "ab"}]


def test_stream_event_done() -> None:
    assert stream_event("[DONE]", STAMP) is DONE


def test_stream_event_restamps_chunks_compactly() -> None:
    theirs = {
        "id": "chatcmpl-theirs",
        "system_fingerprint": "x",
        "object": "chat.completion.chunk",
        "model": "default_model",
        "created": 1,
        "choices": [
            {"index": 0, "finish_reason": None, "delta": {"role": "assistant", "content": "é"}}
        ],
    }
    event = stream_event(json.dumps(theirs), STAMP)
    assert isinstance(event, Delta)
    assert '"model":"tiny"' in event.chunk and "é" in event.chunk  # compact, for the alias rewrite
    assert json.loads(event.chunk) == {
        "id": "chatcmpl-ours",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "é"},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }


def test_stream_event_usage_chunk_is_usage_with_the_object_fixed() -> None:
    theirs = {
        "object": "chat.completion",  # mlx-lm's mistake: a chunk is a chat.completion.chunk
        "choices": [],
        "usage": {
            "prompt_tokens": 17,
            "completion_tokens": 5,
            "total_tokens": 22,
            "prompt_tokens_details": {"cached_tokens": 16},
        },
    }
    event = stream_event(json.dumps(theirs), STAMP)
    assert isinstance(event, Usage)
    assert (event.prompt_tokens, event.completion_tokens) == (17, 5)
    chunk = json.loads(event.chunk)
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["usage"]["prompt_tokens_details"] == {"cached_tokens": 16}


def test_stream_event_completion_chunk() -> None:
    stamp = Stamp(id="cmpl-ours", created=5, model="tiny", chat=False)
    theirs = {
        "object": "text_completion",
        "choices": [{"index": 0, "text": "a", "finish_reason": None}],
    }
    event = stream_event(json.dumps(theirs), stamp)
    assert isinstance(event, Delta)
    chunk = json.loads(event.chunk)
    assert chunk["object"] == "text_completion" and chunk["choices"][0]["text"] == "a"


def test_stream_event_error_body_is_a_stream_error() -> None:
    event = stream_event(json.dumps({"error": {"message": "boom", "code": 500}}), STAMP)
    assert isinstance(event, StreamError) and isinstance(event.error, EngineError)


def test_stream_event_refuses_what_is_not_a_json_object() -> None:
    with pytest.raises(EngineError):
        stream_event("[1, 2]", STAMP)
