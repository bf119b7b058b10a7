"""The MLX server's lines -> OpenAI choices, stream deltas and replies (pure functions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from modelgrid_serving.engines.mlx_choices import ChoiceAssembler, Stamp, chunk, reply
from modelgrid_serving.engines.mlx_translation import Calls
from modelgrid_serving.errors import EngineError

pytestmark = pytest.mark.unit

STAMP = Stamp(id="chatcmpl-ours", created=1700000000, model="tiny", chat=True)


def run(choice: ChoiceAssembler, *lines: dict[str, Any]) -> list[dict[str, Any]]:
    deltas = choice.start()
    for line in lines:
        deltas += choice.feed(line)
    return deltas


def end(reason: str = "stop", tokens: int = 3) -> dict[str, Any]:
    return {"finish_reason": reason, "completion_tokens": tokens}


def test_text_streams_as_content_after_the_role() -> None:
    choice = ChoiceAssembler(1, chat=True)
    deltas = run(choice, {"text": "he"}, {"text": "y"}, end("length"))
    assert [d["delta"] for d in deltas] == [
        {"role": "assistant", "content": ""},
        {"content": "he"},
        {"content": "y"},
        {},
    ]
    assert {d["index"] for d in deltas} == {1}
    assert [d["finish_reason"] for d in deltas] == [None, None, None, "length"]
    assert choice.choice() == {
        "index": 1,
        "message": {"role": "assistant", "content": "hey", "refusal": None},
        "logprobs": None,
        "finish_reason": "length",
    }


def test_completion_choices_carry_text() -> None:
    choice = ChoiceAssembler(0, chat=False)
    deltas = run(choice, {"text": "ab"}, end())
    assert [d["text"] for d in deltas] == ["ab", ""] and "delta" not in deltas[0]
    assert choice.choice()["text"] == "ab" and choice.completion_tokens == 3


def test_auto_calls_come_whole_and_finish_as_tool_calls() -> None:
    choice = ChoiceAssembler(0, chat=True, calls=Calls("auto"))
    call = {"name": "f", "arguments": '{"x": 1}'}
    deltas = run(choice, {"tool_call": call}, {"tool_call": call}, end())
    streamed = [d["delta"]["tool_calls"][0] for d in deltas if "tool_calls" in d["delta"]]
    assert [c["index"] for c in streamed] == [0, 1]
    assert streamed[0]["function"] == call and streamed[0]["type"] == "function"
    assert streamed[0]["id"].startswith("chatcmpl-tool-") and streamed[0]["id"] != streamed[1]["id"]
    message = choice.choice()["message"]
    assert message["content"] is None and len(message["tool_calls"]) == 2
    assert choice.finish_reason == "tool_calls"


def test_auto_without_parallel_calls_keeps_the_first() -> None:
    choice = ChoiceAssembler(0, chat=True, calls=Calls("auto", single=True))
    run(choice, {"tool_call": {"name": "f", "arguments": "{}"}}, {"tool_call": {"name": "g"}})
    assert [c["function"]["name"] for c in choice.tool_calls] == ["f"]


def test_named_call_streams_its_arguments_under_the_name() -> None:
    choice = ChoiceAssembler(0, chat=True, calls=Calls("named", "f", single=True))
    deltas = run(choice, {"text": '{"x"'}, {"text": ": 1}"}, end())
    first, second = (d["delta"]["tool_calls"][0] for d in deltas[1:3])
    assert first["function"] == {"arguments": '{"x"', "name": "f"} and first["id"]
    assert second == {"index": 0, "function": {"arguments": ": 1}"}}
    (call,) = choice.choice()["message"]["tool_calls"]
    assert call == {
        "id": first["id"],
        "type": "function",
        "function": first["function"] | {"arguments": '{"x": 1}'},
    }
    assert choice.finish_reason == "stop"  # as OpenAI answers a named tool_choice
    assert choice.choice()["message"]["content"] is None


def test_required_calls_are_read_at_the_end() -> None:
    choice = ChoiceAssembler(0, chat=True, calls=Calls("required"))
    text = '[{"name": "f", "parameters": {"x": 1}}, {"name": "g", "parameters": {}}]'
    deltas = run(choice, {"text": text[:10]}, {"text": text[10:]}, end())
    assert [d["delta"] for d in deltas[1:-1]] == [
        {"tool_calls": [{"index": 0, **choice.tool_calls[0]}]},
        {"tool_calls": [{"index": 1, **choice.tool_calls[1]}]},
    ]
    assert [c["function"] for c in choice.tool_calls] == [
        {"name": "f", "arguments": '{"x": 1}'},
        {"name": "g", "arguments": "{}"},
    ]
    assert deltas[-1]["finish_reason"] == "tool_calls"
    assert choice.choice()["message"]["content"] is None


def test_required_output_cut_short_stays_text() -> None:
    choice = ChoiceAssembler(0, chat=True, calls=Calls("required"))
    deltas = run(choice, {"text": '[{"name": "f", "para'}, end("length"))
    assert deltas[1]["delta"] == {"content": '[{"name": "f", "para'}
    assert choice.finish_reason == "length" and not choice.tool_calls


@pytest.mark.parametrize("line", [{"error": "boom"}, {"something": "else"}, {"text": 3}])
def test_what_the_server_never_sends_is_an_engine_error(line: dict[str, Any]) -> None:
    with pytest.raises(EngineError):
        ChoiceAssembler(0, chat=True).feed(line)


def test_reply_counts_the_prompt_once_and_every_choice() -> None:
    choices = [ChoiceAssembler(i, chat=True) for i in range(2)]
    for i, choice in enumerate(choices):
        run(choice, {"text": "x"}, end(tokens=i + 4))
    out = reply(STAMP, 10, choices)
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19}
    assert (out["id"], out["object"], out["model"]) == ("chatcmpl-ours", "chat.completion", "tiny")
    assert json.loads(json.dumps(chunk(STAMP, [])))["object"] == "chat.completion.chunk"
