"""What modelgrid assumes of the vLLM it pins: the parser names a spec may give are vLLM's, and
the client errors vLLM's own request models raise become 400s naming the field."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from modelgrid_serving.config import REASONING_PARSERS, TOOL_CALL_PARSERS
from modelgrid_serving.engines.vllm import VLLMEngine, refused_param
from modelgrid_serving.errors import InvalidRequest
from modelgrid_serving.protocol import ChatCompletionRequest, ChatMessage

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def vllm() -> SimpleNamespace:
    """vLLM's registries and chat request model, imported once (vLLM's imports warn about
    torch's deprecations, which are not ours to fix)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.reasoning import ReasoningParserManager
        from vllm.tool_parsers import ToolParserManager
    return SimpleNamespace(
        tool_parsers=ToolParserManager.list_registered(),
        reasoning_parsers=ReasoningParserManager.list_registered(),
        ChatCompletionRequest=ChatCompletionRequest,
    )


def test_the_tool_call_parsers_a_spec_may_name_are_vllms(vllm: SimpleNamespace) -> None:
    assert sorted(TOOL_CALL_PARSERS) == sorted(vllm.tool_parsers)


def test_the_reasoning_parsers_a_spec_may_name_are_vllms(vllm: SimpleNamespace) -> None:
    assert sorted(REASONING_PARSERS) == sorted(vllm.reasoning_parsers)


TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": []}, "tools"),
    ],
)
def test_vllms_own_request_errors_are_400s_naming_the_field(
    vllm: SimpleNamespace, fields: dict[str, Any], param: str
) -> None:
    """Were our protocol to let one through, vLLM's validator raises ``VLLMValidationError``,
    which pydantic does not wrap: it must still reach the client as a 400, not a 500."""
    messages = [ChatMessage(role="user", content="hi")]
    # As if our checks had let it by: built without validation.
    unchecked = ChatCompletionRequest.model_construct(model="m", messages=messages, **fields)
    with pytest.raises(InvalidRequest) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unvalidated fields serialize as given
        VLLMEngine._parse(vllm.ChatCompletionRequest, unchecked)
    assert info.value.param == param and info.value.status_code == 400
    assert "parameter=" not in info.value.message  # vLLM's own suffix is not for the client


@pytest.mark.parametrize(
    ("message", "body", "param"),
    [
        (
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
            {},
            "tool_choice",
        ),
        ('tool_choice="required" requires --tool-call-parser to be set', {}, "tool_choice"),
        (
            "Grammar error: Invalid type: nope",
            {"response_format": {"type": "json_schema"}},
            "response_format",
        ),
        ("Grammar error: Invalid type: nope", {"tools": [TOOL]}, "tools"),
        ("Grammar error: x", {"guided_regex": "("}, "guided_regex"),
        ("tiny is not a multimodal model", {}, "messages"),
        ("The engine is tired", {}, None),
    ],
)
def test_vllms_400s_without_a_param_get_the_field_they_are_about(
    message: str, body: dict[str, Any], param: str | None
) -> None:
    assert refused_param(message, body) == param
