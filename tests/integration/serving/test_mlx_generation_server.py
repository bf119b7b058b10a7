"""The MLX generation server's engine in-process on the tiny model (real MLX, mlx-lm, llguidance):
calls read with mlx-lm's own parser for the model's format, and generation held to a schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from modelgrid_serving.mlx_generation_server import BadRequest, Engine, Generation
from modelgrid_serving.mlx_output import OutputSplitter

pytestmark = pytest.mark.integration

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"enum": ["Oslo", "Lima"]}, "n": {"type": "integer", "maximum": 99}},
    "required": ["city", "n"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Engine:
    return Engine(str(tiny_model))


def request(engine: Engine, **fields: Any) -> Generation:
    return Generation.from_body(
        {"prompt": [1, 5, 9], "max_tokens": 80, **fields}, engine.vocab_size
    )


def read(engine: Engine, generation: Generation, *texts: str) -> list[dict[str, Any]]:
    splitter = OutputSplitter(call_tags=engine.call_tags(generation))
    pieces = [piece for text in texts for piece in splitter.feed(text)] + splitter.finish()
    return list(engine.lines(pieces, generation))


def test_calls_in_the_models_format_are_read_by_mlx_lm(engine: Engine) -> None:
    generation = request(engine, tools=TOOLS)
    assert engine.call_tags(generation) == ("<tool_call>", "</tool_call>")
    lines = read(
        engine,
        generation,
        "ok <tool_",
        'call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
    )
    assert lines == [
        {"text": "ok "},
        {"tool_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
    ]


def test_call_text_that_does_not_parse_stays_text(engine: Engine) -> None:
    lines = read(engine, request(engine, tools=TOOLS), "<tool_call>not json</tool_call>")
    assert lines == [{"text": "<tool_call>not json</tool_call>"}]


def test_without_tools_nothing_is_read_as_a_call(engine: Engine) -> None:
    generation = request(engine)
    assert engine.call_tags(generation) is None
    assert read(engine, generation, "<tool_call>{}</tool_call>") == [
        {"text": "<tool_call>{}</tool_call>"}
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generation_held_to_a_schema_validates(engine: Engine, seed: int) -> None:
    generation = request(engine, json_schema=SCHEMA, seed=seed)
    lines = list(engine.generate(generation, engine.check(generation)))
    assert lines[-1]["finish_reason"] == "stop", lines
    text = "".join(line.get("text", "") for line in lines)
    jsonschema.validate(json.loads(text), SCHEMA)


def test_a_stop_word_ends_generation(engine: Engine) -> None:
    generation = request(engine, json_schema=SCHEMA, seed=1, stop=['"city"'])
    lines = list(engine.generate(generation, engine.check(generation)))
    assert lines[-1]["finish_reason"] == "stop"
    assert "".join(line.get("text", "") for line in lines) == "{"


def test_a_schema_llguidance_cannot_use_is_refused_before_generating(engine: Engine) -> None:
    with pytest.raises(BadRequest) as info:
        engine.check(request(engine, json_schema={"type": "nope"}))
    assert info.value.field == "json_schema"
