"""The OpenAI request models: bounds, required fields, extensions passing through."""

from __future__ import annotations

import pytest
from factories import TOOL_TURN
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


# --- strict JSON types (issue 19, point 5) ------------------------------------------------

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", "yes"),
        ("stream", 1),
        ("logprobs", "true"),
        ("ignore_eos", 0),
        ("parallel_tool_calls", "false"),
        ("n", "2"),
        ("n", 2.0),
        ("n", True),
        ("max_tokens", "16"),
        ("seed", 1.5),
        ("temperature", "0.5"),
        ("temperature", True),
        ("top_logprobs", "2"),
    ],
)
def test_chat_refuses_a_value_of_the_wrong_json_type(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "logprobs": True, field: value})
    assert param_of(info.value) == field


def test_chat_a_number_field_takes_an_integer() -> None:
    assert ChatCompletionRequest.model_validate({**CHAT, "temperature": 1}).temperature == 1.0


def test_chat_stream_options_include_usage_must_be_a_boolean() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(
            {**CHAT, "stream": True, "stream_options": {"include_usage": "yes"}}
        )
    assert param_of(info.value) == "stream_options.include_usage"


def test_completion_echo_must_be_a_boolean() -> None:
    with pytest.raises(ValidationError) as info:
        CompletionRequest.model_validate({"model": "m", "prompt": "x", "echo": "no"})
    assert param_of(info.value) == "echo"


def test_cross_field_refusals_name_their_field() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "stream_options": {"include_usage": True}})
    assert param_of(info.value) == "stream_options"
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "top_logprobs": 2})
    assert param_of(info.value) == "top_logprobs"
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "response_format": {"type": "json_schema"}})
    assert param_of(info.value) == "response_format.json_schema"


def test_tool_choice_naming_a_function_not_in_tools_names_tool_choice() -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "tools": [TOOL], "tool_choice": choice})
    error = from_validation_error(info.value)
    assert error.param == "tool_choice"
    assert "'get_time'" in error.message and "get_weather" in error.message


def test_tool_choice_naming_a_listed_function_passes() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    request = ChatCompletionRequest.model_validate({**CHAT, "tools": [TOOL], "tool_choice": choice})
    assert request.tool_choice is not None and request.tool_choice != "none"


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        ("required", "tool_choice"),
        ({"type": "function", "function": {"name": "get_weather"}}, "tool_choice"),
    ],
)
def test_tool_choice_without_tools_is_refused(choice: object, param: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "tool_choice": choice})
    assert param_of(info.value) == param
    ChatCompletionRequest.model_validate({**CHAT, "tool_choice": "none"})


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        ("always", "tool_choice"),
        ({"type": "function"}, "tool_choice.function"),
        ({"type": "function", "function": {}}, "tool_choice.function.name"),
        ({"type": "custom", "function": {"name": "get_weather"}}, "tool_choice.type"),
    ],
)
def test_a_malformed_tool_choice_names_its_part(choice: object, param: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "tools": [TOOL], "tool_choice": choice})
    assert param_of(info.value) == param


def test_tools_must_not_be_empty_and_names_follow_openai() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "tools": []})
    assert param_of(info.value) == "tools"
    bad = {"type": "function", "function": {"name": "get weather"}}
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "tools": [bad]})
    assert param_of(info.value) == "tools.0.function.name"


AGENT_HISTORY = [
    {"role": "user", "content": "weather?"},
    *TOOL_TURN,
]


def test_an_agent_history_passes() -> None:
    request = ChatCompletionRequest.model_validate(
        {**CHAT, "messages": AGENT_HISTORY, "tools": [TOOL]}
    )
    calls = request.messages[1].tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({2: {"role": "tool", "content": "12 C"}}, "messages.2.tool_call_id"),
        (
            {2: {"role": "tool", "tool_call_id": "call_9", "content": "x"}},
            "messages.2.tool_call_id",
        ),
        (
            {1: {"role": "assistant", "tool_calls": [{"id": "call_1", "function": {"name": "f"}}]}},
            "messages.1.tool_calls.0.function.arguments",
        ),
        (
            {
                1: {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "call_1", "function": {"name": "f", "arguments": {"a": 1}}}
                    ],
                }
            },
            "messages.1.tool_calls.0.function.arguments",
        ),
    ],
)
def test_a_broken_agent_history_names_the_message_field(
    change: dict[int, dict[str, object]], param: str
) -> None:
    messages = [change.get(i, m) for i, m in enumerate(AGENT_HISTORY)]
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({**CHAT, "messages": messages, "tools": [TOOL]})
    assert param_of(info.value) == param


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "banana"}, "messages.0.content.0.type"),
        ({"text": "hi"}, "messages.0.content.0.type"),
        ({"type": "text"}, "messages.0.content.0"),
        ({"type": "text", "text": 7}, "messages.0.content.0.text"),
    ],
)
def test_a_bad_content_part_names_it(part: dict[str, object], param: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(
            {**CHAT, "messages": [{"role": "user", "content": [part]}]}
        )
    assert param_of(info.value) == param


def test_content_parts_of_known_types_pass_for_the_engine_to_judge() -> None:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
    ]
    request = ChatCompletionRequest.model_validate(
        {**CHAT, "messages": [{"role": "user", "content": parts}]}
    )
    content = request.messages[0].content
    assert isinstance(content, list) and content[1].model_dump(exclude_none=True) == parts[1]
