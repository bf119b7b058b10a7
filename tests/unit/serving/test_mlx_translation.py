"""The MLX engine's request translation: OpenAI requests -> generation plans (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
from modelgrid_serving.engines.mlx_translation import (
    ANY_OBJECT,
    MAX_CHOICES,
    NO_EOS_BIAS,
    Plan,
    Target,
    to_mlx_chat,
    to_mlx_completion,
)
from modelgrid_serving.errors import ContextLengthExceeded, InvalidRequest
from modelgrid_serving.protocol import ChatCompletionRequest, CompletionRequest

pytestmark = pytest.mark.unit

MESSAGES = [{"role": "user", "content": "hi"}]


class FakeEncoder:
    """One token per character (its code point), ten more for the chat template's framing;
    it records what the template was given."""

    eos_token_ids = frozenset({2, 7})

    def __init__(self) -> None:
        self.seen: list[tuple[list[dict[str, Any]], Any]] = []

    def encode_chat(self, messages: list[dict[str, Any]], tools: Any) -> list[int]:
        self.seen.append((messages, tools))
        return [1] * 10 + [ord(c) for m in messages for c in m.get("content") or ""]

    def encode_text(self, prompt: str) -> list[int]:
        return [ord(c) for c in prompt]


def target() -> Target:
    return Target(max_model_len=64, encoder=FakeEncoder())


def chat(into: Target | None = None, **fields: Any) -> Plan:
    request = ChatCompletionRequest.model_validate(
        {"model": "tiny", "messages": MESSAGES, **fields}
    )
    return to_mlx_chat(request, into or target())


def completion(**fields: Any) -> Plan:
    request = CompletionRequest.model_validate({"model": "tiny", "prompt": "hello", **fields})
    return to_mlx_completion(request, target())


def test_to_mlx_chat_sends_the_encoded_prompt_and_openai_defaults() -> None:
    plan = chat(max_tokens=5)
    assert plan.body == {
        "prompt": [1] * 10 + [ord("h"), ord("i")],
        "max_tokens": 5,
        "temperature": 1.0,  # OpenAI's default; MLX's samplers would be greedy
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
    }
    assert (plan.n, plan.prompt_tokens, plan.seed) == (1, 12, None)
    assert plan.calls.mode == "none" and plan.body_for(0) == plan.body


def test_to_mlx_chat_maps_sampling_penalties_seed_and_stop() -> None:
    plan = chat(
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
    out = plan.body
    assert out["temperature"] == 0 and out["top_p"] == 0.5 and out["top_k"] == 0
    assert out["min_p"] == 0.1
    assert out["presence_penalty"] == 1.5 and out["frequency_penalty"] == -1
    assert out["repetition_penalty"] == 1.3 and out["context_size"] == 64  # the whole context
    assert plan.seed == 2**64 - 1  # MLX seeds with an unsigned integer
    assert out["stop"] == ["o"]
    assert out["logit_bias"] == {"5": 3.0}


def test_each_choice_gets_the_next_seed() -> None:
    plan = chat(max_tokens=1, n=3, seed=2**64 - 2)
    assert plan.n == 3
    assert [plan.body_for(i)["seed"] for i in range(3)] == [2**64 - 2, 2**64 - 1, 0]
    assert "seed" not in chat(max_tokens=1, n=2).body_for(1)  # unseeded: the server draws


def test_n_is_bounded() -> None:
    assert chat(max_tokens=1, n=MAX_CHOICES).n == MAX_CHOICES
    with pytest.raises(InvalidRequest) as info:
        chat(max_tokens=1, n=MAX_CHOICES + 1)
    assert info.value.param == "n" and info.value.code == "unsupported_parameter"


def test_to_mlx_chat_ignore_eos_biases_every_eos_token_away() -> None:
    out = chat(max_tokens=5, ignore_eos=True, logit_bias={"5": 1.0}).body
    assert out["logit_bias"] == {"5": 1.0, "2": NO_EOS_BIAS, "7": NO_EOS_BIAS}


def test_to_mlx_chat_max_completion_tokens_wins() -> None:
    assert chat(max_tokens=9, max_completion_tokens=3).body["max_tokens"] == 3


def test_to_mlx_chat_without_limit_fills_the_context() -> None:
    assert chat().body["max_tokens"] == 64 - (2 + 10)


def test_to_mlx_chat_text_parts_become_one_string() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    into = target()
    chat(into, max_tokens=1, messages=[{"role": "user", "content": parts}])
    assert into.encoder.seen[-1][0] == [{"role": "user", "content": "ab"}]  # type: ignore[attr-defined]


def function(name: str, parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters, **extra}}


STRICT = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
TOOLS = [function("f", {"type": "object"}), function("g", STRICT, strict=True)]


def test_tool_choice_none_hides_the_tools_auto_reads_calls() -> None:
    into = target()
    plan = chat(into, max_tokens=1, tools=TOOLS, tool_choice="none")
    assert into.encoder.seen[-1][1] is None and "tools" not in plan.body  # type: ignore[attr-defined]
    plan = chat(into, max_tokens=1, tools=TOOLS)
    assert plan.calls.mode == "auto" and [t["function"]["name"] for t in plan.body["tools"]] == [
        "f",
        "g",
    ]
    assert into.encoder.seen[-1][1] == plan.body["tools"]  # type: ignore[attr-defined]
    assert "json_schema" not in plan.body


def test_named_tool_choice_holds_the_output_to_the_functions_arguments() -> None:
    named = {"type": "function", "function": {"name": "g"}}
    plan = chat(max_tokens=1, tools=TOOLS, tool_choice=named)
    assert (plan.calls.mode, plan.calls.function) == ("named", "g")
    assert plan.body["json_schema"] == STRICT  # strict: its schema
    assert plan.schema_param == "tools.1.function.parameters"
    assert "tools" not in plan.body  # the output is the arguments, not a call in the model's format
    named = {"type": "function", "function": {"name": "f"}}
    assert chat(max_tokens=1, tools=TOOLS, tool_choice=named).body["json_schema"] == ANY_OBJECT


def test_required_tool_choice_holds_the_output_to_an_array_of_calls() -> None:
    plan = chat(max_tokens=1, tools=TOOLS, tool_choice="required")
    schema = plan.body["json_schema"]
    assert plan.calls.mode == "required" and plan.schema_param == "tools"
    assert schema["type"] == "array" and schema["minItems"] == 1 and "maxItems" not in schema
    names = [item["properties"]["name"]["enum"] for item in schema["items"]["anyOf"]]
    parameters = [item["properties"]["parameters"] for item in schema["items"]["anyOf"]]
    assert names == [["f"], ["g"]] and parameters == [ANY_OBJECT, STRICT]
    single = chat(max_tokens=1, tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
    assert single.body["json_schema"]["maxItems"] == 1 and single.calls.single


@pytest.mark.parametrize(
    ("response_format", "schema"),
    [
        ({"type": "json_object"}, ANY_OBJECT),
        ({"type": "json_schema", "json_schema": {"name": "s", "schema": STRICT}}, STRICT),
        ({"type": "json_schema", "json_schema": {"name": "s"}}, ANY_OBJECT),
    ],
)
def test_response_format_becomes_the_schema(
    response_format: dict[str, Any], schema: dict[str, Any]
) -> None:
    plan = chat(max_tokens=1, response_format=response_format)
    assert plan.body["json_schema"] == schema
    assert plan.schema_param == "response_format.json_schema"
    assert "json_schema" not in chat(max_tokens=1, response_format={"type": "text"}).body


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        (
            {
                "tools": TOOLS,
                "tool_choice": "required",
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": [1]}}},
            "response_format.json_schema.schema",
        ),
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
        ({"n": MAX_CHOICES + 1}, "n"),
    ],
)
def test_to_mlx_completion_refuses_naming_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        completion(max_tokens=1, **fields)
    assert info.value.param == param


def test_to_mlx_completion_takes_n_and_harmless_defaults() -> None:
    plan = completion(max_tokens=2, n=3, best_of=1, echo=False, user="u")
    assert plan.body["prompt"] == [ord(c) for c in "hello"] and plan.body["max_tokens"] == 2
    assert plan.n == 3 and plan.calls.mode == "none"


def test_context_limit_names_the_limit() -> None:
    with pytest.raises(ContextLengthExceeded) as info:
        completion(prompt="x" * 64)
    assert "64" in info.value.message and info.value.param == "prompt"
    with pytest.raises(ContextLengthExceeded) as info:
        completion(max_tokens=60)
    assert "64" in info.value.message and info.value.param == "max_tokens"
