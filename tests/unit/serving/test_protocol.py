"""The OpenAI request models: bounds, required fields, extensions passing through."""

from __future__ import annotations

import pytest
from modelgrid_serving.errors import from_validation_error
from modelgrid_serving.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from pydantic import ValidationError

pytestmark = pytest.mark.unit

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def param_of(exc: ValidationError) -> str | None:
    return from_validation_error(exc).param


def test_chat_accepts_a_minimal_request() -> None:
    request = ChatCompletionRequest.model_validate(CHAT)
    assert request.messages[0].role == "user"
    assert not request.stream


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", 2.5),
        ("top_p", 0),
        ("top_p", 1.5),
        ("top_k", -2),
        ("min_p", 1.5),
        ("presence_penalty", 3),
        ("frequency_penalty", -2.5),
        ("repetition_penalty", 0),
        ("n", 0),
        ("n", 129),
        ("max_tokens", 0),
        ("max_completion_tokens", 0),
        ("top_logprobs", 21),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("temperature", "hot"),
    ],
)
def test_chat_out_of_range_names_the_param(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, field: value})
    assert param_of(info.value) == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0),
        ("temperature", 2),
        ("top_p", 1),
        ("top_k", -1),
        ("min_p", 0),
        ("repetition_penalty", 1.2),
        ("n", 2),
        ("seed", 7),
        ("stop", ["x"]),
        ("stop", "x"),
    ],
)
def test_chat_in_range_values_pass(field: str, value: object) -> None:
    ChatCompletionRequest.model_validate({**CHAT, field: value})


def test_chat_without_messages_names_messages() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({"model": "m"})
    assert param_of(info.value) == "messages"
    assert "required" in from_validation_error(info.value).message


def test_chat_empty_messages_are_refused() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**CHAT, "messages": []})


def test_chat_unknown_role_names_the_message_field() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(
            {**CHAT, "messages": [{"role": "robot", "content": "x"}]}
        )
    assert param_of(info.value) == "messages.0.role"


def test_chat_stream_options_need_stream() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**CHAT, "stream_options": {"include_usage": True}})
    request = ChatCompletionRequest.model_validate(
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert request.wants_usage_in_stream()


def test_chat_top_logprobs_need_logprobs() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**CHAT, "top_logprobs": 2})
    ChatCompletionRequest.model_validate({**CHAT, "logprobs": True, "top_logprobs": 2})


def test_chat_max_completion_tokens_wins_over_max_tokens() -> None:
    request = ChatCompletionRequest.model_validate(
        {**CHAT, "max_tokens": 5, "max_completion_tokens": 9}
    )
    assert request.output_limit() == 9


def test_chat_response_format_json_mode_and_tools() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            **CHAT,
            "response_format": {"type": "json_object"},
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ],
            "tool_choice": "auto",
        }
    )
    assert request.response_format is not None and request.response_format.type == "json_object"
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "response_format": {"type": "yaml"}})
    assert param_of(info.value) == "response_format.type"


def test_unknown_fields_pass_through() -> None:
    request = ChatCompletionRequest.model_validate({**CHAT, "guided_choice": ["a"], "priority": 1})
    assert request.model_extra == {"guided_choice": ["a"], "priority": 1}


@pytest.mark.parametrize("prompt", ["hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_completion_prompt_shapes(prompt: object) -> None:
    CompletionRequest.model_validate({"model": "m", "prompt": prompt})


def test_completion_logprobs_bounds() -> None:
    with pytest.raises(ValidationError) as info:
        CompletionRequest.model_validate({"model": "m", "prompt": "x", "logprobs": 6})
    assert param_of(info.value) == "logprobs"


def test_completion_needs_a_prompt() -> None:
    with pytest.raises(ValidationError) as info:
        CompletionRequest.model_validate({"model": "m"})
    assert param_of(info.value) == "prompt"


@pytest.mark.parametrize("value", ["", [], [[]]])
def test_embedding_input_must_not_be_empty(value: object) -> None:
    with pytest.raises(ValidationError):
        EmbeddingRequest.model_validate({"model": "m", "input": value})


def test_embedding_encoding_format() -> None:
    EmbeddingRequest.model_validate({"model": "m", "input": ["a"], "encoding_format": "base64"})
    with pytest.raises(ValidationError) as info:
        EmbeddingRequest.model_validate({"model": "m", "input": "a", "encoding_format": "hex"})
    assert param_of(info.value) == "encoding_format"
