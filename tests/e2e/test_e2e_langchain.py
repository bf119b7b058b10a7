"""LangChain's OpenAI chat model (``langchain-openai``, pinned in pyproject's ``e2e`` extra)
through the gateway, once per pool and once through the mixed name: ``bind_tools`` with the
tool's result sent back and a final answer, streaming, and ``with_structured_output``."""

from __future__ import annotations

import pytest
from e2e_support import (
    ANSWER_TOKENS,
    QUESTION,
    SEED,
    TIMEOUT_S,
    TOOL_TOKENS,
    UNTIL_LENGTH,
    Forecast,
    Target,
    get_weather,
)
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

pytestmark = pytest.mark.e2e

weather_tool = tool(get_weather)


def chat_model(target: Target, *, constrained: bool = False) -> ChatOpenAI:
    """A chat model of ``target``: for free text (exactly :data:`ANSWER_TOKENS` tokens), or with
    room for a constrained answer (a tool call, a schema) that ends where its grammar does."""
    return ChatOpenAI(
        model=target.model,
        base_url=target.base_url,
        api_key="unused",  # type: ignore[arg-type]
        default_headers=target.headers,
        max_tokens=TOOL_TOKENS if constrained else ANSWER_TOKENS,  # type: ignore[call-arg]
        max_retries=0,
        timeout=TIMEOUT_S,
        extra_body=None if constrained else UNTIL_LENGTH,
        seed=SEED if constrained else None,
    )


def test_e2e_langchain_bind_tools_round_trip(target: Target) -> None:
    caller = chat_model(target, constrained=True).bind_tools(
        [weather_tool], tool_choice="get_weather", strict=True
    )
    history: list[HumanMessage | AIMessage | ToolMessage] = [HumanMessage(QUESTION)]
    asked = caller.invoke(history)
    assert isinstance(asked, AIMessage)
    (call,) = asked.tool_calls
    assert call["name"] == "get_weather" and call["args"]["city"] in {"Oslo", "Lima"}
    history += [asked, weather_tool.invoke(call)]  # the tool runs: a ToolMessage for the call
    final = chat_model(target).bind_tools([weather_tool], tool_choice="none").invoke(history)
    assert isinstance(final, AIMessage)
    assert final.content and not final.tool_calls
    assert final.response_metadata["finish_reason"] == "length"
    question = chat_model(target).invoke(QUESTION)
    read, sent = (m.usage_metadata for m in (question, final))
    assert read is not None and sent is not None
    assert sent["input_tokens"] > read["input_tokens"]  # the call and its result were read


def test_e2e_langchain_streams(target: Target) -> None:
    chunks = list(chat_model(target).stream(QUESTION, stream_usage=True))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    whole = sum(chunks[1:], chunks[0])
    assert isinstance(whole, AIMessageChunk)
    assert len(chunks) > 1 and whole.content
    assert whole.response_metadata.get("finish_reason") == "length"
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] == ANSWER_TOKENS


def test_e2e_langchain_structured_output(target: Target) -> None:
    forecaster = chat_model(target, constrained=True).with_structured_output(
        Forecast, method="json_schema", strict=True
    )
    answer = forecaster.invoke("Forecast for Lima, as JSON.")
    assert isinstance(answer, Forecast)
