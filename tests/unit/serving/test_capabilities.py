"""The capability declaration: what each request field needs, what each engine declares, and
that the MLX engine refuses exactly what its entry leaves out."""

from __future__ import annotations

from typing import Any

import pytest
from modelgrid_serving.engines.mlx_translation import Target, to_mlx_chat, to_mlx_completion
from modelgrid_serving.errors import InvalidRequest
from modelgrid_serving.protocol import ChatCompletionRequest, CompletionRequest
from modelgrid_serving.protocol.capabilities import (
    ALL_CAPABILITIES,
    ENGINE_CAPABILITIES,
    Capability,
    engine_capabilities,
    parse_capabilities,
    requirements,
)

pytestmark = pytest.mark.unit

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

NEEDS: list[tuple[str, dict[str, Any], Capability, str]] = [
    ("chat", {"tools": TOOLS}, Capability.TOOLS, "tools"),
    ("chat", {"tools": TOOLS, "tool_choice": "auto"}, Capability.TOOLS, "tools"),
    ("chat", {"tools": TOOLS, "tool_choice": "required"}, Capability.TOOL_CHOICE, "tool_choice"),
    (
        "chat",
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "f"}}},
        Capability.TOOL_CHOICE,
        "tool_choice",
    ),
    (
        "chat",
        {"tools": TOOLS, "parallel_tool_calls": False},
        Capability.TOOL_CHOICE,
        "parallel_tool_calls",
    ),
    (
        "chat",
        {"response_format": {"type": "json_object"}},
        Capability.STRUCTURED_OUTPUT,
        "response_format",
    ),
    (
        "chat",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
        Capability.STRUCTURED_OUTPUT,
        "response_format",
    ),
    ("chat", {"logprobs": True}, Capability.LOGPROBS, "logprobs"),
    ("chat", {"logprobs": True, "top_logprobs": 2}, Capability.LOGPROBS, "logprobs"),
    ("chat", {"n": 2}, Capability.N, "n"),
    ("chat", {"reasoning_effort": "low"}, Capability.REASONING, "reasoning_effort"),
    ("chat", {"min_tokens": 2}, Capability.MIN_TOKENS, "min_tokens"),
    ("completions", {"logprobs": 0}, Capability.LOGPROBS, "logprobs"),
    ("completions", {"best_of": 2}, Capability.BEST_OF, "best_of"),
    ("completions", {"n": 3}, Capability.N, "n"),
    ("completions", {"prompt": ["a", "b"]}, Capability.PROMPT_ARRAYS, "prompt"),
    ("completions", {"prompt": [1, 2]}, Capability.PROMPT_ARRAYS, "prompt"),
    ("completions", {"echo": True}, Capability.ECHO, "echo"),
]
"""A request field, on a route, and the capability it needs (every capability but embeddings)."""


def body(route: str, fields: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "m", "max_tokens": 1}
    base.update({"messages": MESSAGES} if route == "chat" else {"prompt": "hello"})
    return {**base, **fields}


@pytest.mark.parametrize(("route", "fields", "capability", "param"), NEEDS)
def test_requirements_name_the_capability_and_its_field(
    route: str, fields: dict[str, Any], capability: Capability, param: str
) -> None:
    found = requirements(route, body(route, fields))
    assert found[capability] == param


def test_requirements_cover_every_capability() -> None:
    covered = {c for _, _, c, _ in NEEDS} | {*requirements("embeddings", {"input": "x"})}
    assert covered == ALL_CAPABILITIES


@pytest.mark.parametrize(
    ("route", "fields"),
    [
        ("chat", {}),
        ("chat", {"tools": TOOLS, "tool_choice": "none"}),
        ("chat", {"tools": TOOLS, "tool_choice": "none", "parallel_tool_calls": False}),
        ("chat", {"logprobs": False, "n": 1, "response_format": {"type": "text"}}),
        ("chat", {"tools": [], "min_tokens": 0}),
        ("completions", {"echo": False, "best_of": 1, "n": 1}),
        ("completions", {"n": "2"}),  # not an integer: the bounds' 400, not a capability
    ],
)
def test_requirements_of_a_plain_request_are_none(route: str, fields: dict[str, Any]) -> None:
    assert requirements(route, body(route, fields)) == {}


def test_requirements_look_only_among_what_some_pool_lacks() -> None:
    payload = body("chat", {"tools": TOOLS, "n": 2, "logprobs": True})
    assert requirements("chat", payload, frozenset()) == {}
    assert requirements("chat", payload, frozenset({Capability.N})) == {Capability.N: "n"}
    assert list(requirements("chat", payload)) == [
        Capability.TOOLS,
        Capability.LOGPROBS,
        Capability.N,
    ]


def test_requirements_of_embeddings() -> None:
    assert requirements("embeddings", {"input": "x"}) == {Capability.EMBEDDINGS: "model"}
    assert requirements("embeddings", {"input": "x"}, frozenset({Capability.N})) == {}


def test_engine_capabilities_depend_on_the_parsers() -> None:
    plain = engine_capabilities("vllm")
    assert Capability.TOOLS not in plain and Capability.REASONING not in plain
    tools = engine_capabilities("vllm", tool_call_parser="auto")
    assert {Capability.TOOLS, Capability.TOOL_CHOICE} <= tools
    assert Capability.REASONING in engine_capabilities("vllm", reasoning_parser="qwen3")
    # MLX's parsers are its own (mlx-lm's): the spec's vLLM parsers change nothing
    assert (
        engine_capabilities("mlx", tool_call_parser="hermes", reasoning_parser="qwen3")
        == (ENGINE_CAPABILITIES["mlx"])
    )


def test_engine_capabilities_of_an_unknown_engine_is_an_error() -> None:
    with pytest.raises(ValueError, match="'tgi'"):
        engine_capabilities("tgi")


def test_parse_capabilities_names_the_unknown_ones() -> None:
    assert parse_capabilities(["tools", "n"]) == {Capability.TOOLS, Capability.N}
    with pytest.raises(ValueError, match=r"\['telepathy'\].*structured_output"):
        parse_capabilities(["tools", "telepathy"])


class _Encoder:
    eos_token_ids = frozenset({2})

    def encode_chat(self, messages: list[dict[str, Any]], tools: Any) -> list[int]:
        return [1] * 10

    def encode_text(self, prompt: str) -> list[int]:
        return [1] * 5


_TARGET = Target(max_model_len=64, encoder=_Encoder())


@pytest.mark.parametrize(("route", "fields", "capability", "param"), NEEDS)
def test_mlx_engine_refuses_exactly_what_its_declaration_leaves_out(
    route: str, fields: dict[str, Any], capability: Capability, param: str
) -> None:
    """The declaration is the engine's: a capability MLX declares passes its translation, one
    it does not is refused there with the same field named."""
    payload = body(route, fields)
    translate = (
        (lambda: to_mlx_chat(ChatCompletionRequest.model_validate(payload), _TARGET))
        if route == "chat"
        else (lambda: to_mlx_completion(CompletionRequest.model_validate(payload), _TARGET))
    )
    if capability in ENGINE_CAPABILITIES["mlx"]:
        translate()
        return
    with pytest.raises(InvalidRequest) as info:
        translate()
    assert info.value.param == param
    assert info.value.code == "unsupported_parameter"
