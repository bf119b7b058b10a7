"""The MLX generation server's engine and scheduler in-process on the tiny model (real MLX,
mlx-lm's continuous batch, llguidance): calls read with mlx-lm's own parser for the model's
format, generation held to a schema, stop words, seeds that repeat beside other sequences."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from modelgrid_serving.mlx_generation import BadRequest, Engine, Generation, Scheduler
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


@pytest.fixture
def scheduler(engine: Engine) -> Iterator[Scheduler]:
    running = Scheduler(engine)
    yield running
    running.stop()


def generate(engine: Engine, scheduler: Scheduler, generation: Generation) -> list[dict[str, Any]]:
    """Every line of one sequence, run in the scheduler's batch."""
    turn = scheduler.submit(generation, engine.check(generation))
    lines = []
    while (line := turn.out.get(timeout=60)) is not None:
        lines.append(line)
    return lines


def text_of(lines: list[dict[str, Any]]) -> str:
    return "".join(line.get("text", "") for line in lines)


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
def test_generation_held_to_a_schema_validates(
    engine: Engine, scheduler: Scheduler, seed: int
) -> None:
    lines = generate(engine, scheduler, request(engine, json_schema=SCHEMA, seed=seed))
    assert lines[-1]["finish_reason"] == "stop", lines
    jsonschema.validate(json.loads(text_of(lines)), SCHEMA)
    assert lines[-1]["completion_tokens"] > 5


def test_a_stop_word_ends_generation(engine: Engine, scheduler: Scheduler) -> None:
    generation = request(engine, json_schema=SCHEMA, seed=1, stop=['"city"'])
    lines = generate(engine, scheduler, generation)
    assert lines[-1]["finish_reason"] == "stop"
    assert text_of(lines) == "{"


def test_max_tokens_ends_generation_with_length(engine: Engine, scheduler: Scheduler) -> None:
    lines = generate(engine, scheduler, request(engine, max_tokens=5, logit_bias={"2": -1e9}))
    assert lines[-1] == {"finish_reason": "length", "completion_tokens": 5}


def test_a_seed_repeats_whatever_runs_beside_it(engine: Engine, scheduler: Scheduler) -> None:
    """Sequences in one batch each draw from their own key: a seeded one gives the same text
    alone and beside others (OpenAI's and vLLM's promise for a seed)."""
    seeded = request(engine, max_tokens=12, seed=42, logit_bias={"2": -1e9})
    alone = text_of(generate(engine, scheduler, seeded))
    others = [request(engine, max_tokens=30, logit_bias={"2": -1e9}) for _ in range(3)]
    turns = [scheduler.submit(g, None) for g in others]
    beside = text_of(generate(engine, scheduler, seeded))
    for turn in turns:
        while turn.out.get(timeout=60) is not None:
            pass
    assert alone == beside and alone


def test_a_schema_llguidance_cannot_use_is_refused_before_generating(engine: Engine) -> None:
    with pytest.raises(BadRequest) as info:
        engine.check(request(engine, json_schema={"type": "nope"}))
    assert info.value.field == "json_schema"


def test_a_grammar_that_fails_lets_only_the_end_of_sequence_through(engine: Engine) -> None:
    """A token the grammar refuses (only a logit_bias or a library limit could sample one)
    puts the matcher in error: the output then ends instead of running on unconstrained."""
    import mlx.core as mx
    from modelgrid_serving.mlx_grammar import GrammarProcessor

    eos = engine.tokenizer.eos_token_ids
    matcher = engine.check(request(engine, json_schema=SCHEMA))
    processor = GrammarProcessor(matcher, engine.vocab_size, eos)
    logits = mx.zeros((1, engine.vocab_size))
    opening = processor(mx.array([1]), logits)
    allowed = {i for i, v in enumerate(opening[0].tolist()) if v > float("-inf")}
    assert allowed and not allowed & set(eos)  # a JSON object must start first
    refused = next(i for i in range(engine.vocab_size) if i not in allowed and i not in eos)
    after = processor(mx.array([1, refused]), logits)
    assert {i for i, v in enumerate(after[0].tolist()) if v > float("-inf")} == set(eos)
