"""The OpenAI Agents SDK (``openai-agents``, pinned in pyproject's ``e2e`` extra) through the
gateway with its chat-completions model class, once per pool and once through the mixed name:
one agent run that calls one function tool and finishes.

The agent is told to call the tool (``tool_choice`` names it) and to finish with the tool's
result (``stop_on_first_tool``): with random weights, a free second turn could call the tool
again until the run's turn limit. Tracing is off: it would post the run to OpenAI's platform.
"""

from __future__ import annotations

import json

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    RunConfig,
    Runner,
    ToolCallItem,
    ToolCallOutputItem,
    function_tool,
)
from e2e_support import QUESTION, SEED, TOOL_TOKENS, Target, get_weather

pytestmark = pytest.mark.e2e

weather_tool = function_tool(get_weather, strict_mode=True)


async def test_e2e_agents_sdk_run_calls_the_tool_and_finishes(target: Target) -> None:
    async with target.async_client() as client:
        agent = Agent(
            name="forecaster",
            instructions="Answer with the weather tool.",
            model=OpenAIChatCompletionsModel(model=target.model, openai_client=client),
            model_settings=ModelSettings(
                tool_choice="get_weather", max_tokens=TOOL_TOKENS, extra_args={"seed": SEED}
            ),
            tools=[weather_tool],
            tool_use_behavior="stop_on_first_tool",
        )
        result = await Runner.run(
            agent, QUESTION, max_turns=2, run_config=RunConfig(tracing_disabled=True)
        )
    calls = [item for item in result.new_items if isinstance(item, ToolCallItem)]
    outputs = [item for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    assert len(calls) == 1 and len(outputs) == 1, result.new_items
    arguments = json.loads(calls[0].raw_item.arguments)  # type: ignore[union-attr]
    assert outputs[0].output == get_weather(**arguments)
    assert result.final_output == outputs[0].output
    assert len(result.raw_responses) == 1  # one model call, and the run finished
