"""Structured output on both real engines through the OpenAI SDK: a JSON schema given as a
pydantic model (``client.chat.completions.parse``, as SDK users write it) comes back as JSON
that validates, parsed into that model. vLLM holds it with its guided decoding, MLX with
llguidance in its generation server. The tiny model's weights are random: only the schema makes
the answer valid, so a reply that parses is the engine's doing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

import jsonschema
import openai
import pytest
from local_stack import Stack
from pydantic import BaseModel, ConfigDict

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Weather in Oslo?"}]
MAX_TOKENS = 240
"""Room for the answer however the engine spaces it: vLLM's grammar lets a random model write runs
of whitespace between tokens (MLX's writes JSON compactly, in about 20 tokens)."""


class Weather(BaseModel):
    """What the answer must be: small enough for a few dozen tokens (enums, a boolean)."""

    model_config = ConfigDict(extra="forbid")
    city: Literal["Oslo", "Lima"]
    unit: Literal["c", "f"]
    raining: bool


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with stack.client() as sdk:
        yield sdk


@pytest.mark.parametrize("seed", [1, 2])
def test_a_json_schema_answer_validates_and_parses(
    client: openai.OpenAI, stack: Stack, seed: int
) -> None:
    reply = client.chat.completions.parse(
        model=stack.model,
        messages=MESSAGES,
        response_format=Weather,
        max_tokens=MAX_TOKENS,
        seed=seed,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice
    jsonschema.validate(json.loads(choice.message.content or ""), Weather.model_json_schema())
    assert isinstance(choice.message.parsed, Weather)


def test_a_json_schema_holds_every_choice_and_the_stream(
    client: openai.OpenAI, stack: Stack
) -> None:
    schema = {"name": "weather", "strict": True, "schema": Weather.model_json_schema()}
    stream = client.chat.completions.create(
        model=stack.model,
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format={"type": "json_schema", "json_schema": schema},  # type: ignore[typeddict-item]
        max_tokens=MAX_TOKENS,
        n=2,
        stream=True,
    )
    texts = {0: "", 1: ""}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    for text in texts.values():
        Weather.model_validate_json(text)
