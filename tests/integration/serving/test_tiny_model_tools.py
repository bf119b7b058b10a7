"""The tiny model knows tools: its chat template renders tool definitions, an assistant's
``tool_calls`` and ``tool`` results in Hermes' format (what vLLM's ``hermes`` parser and mlx-lm's
``json_tools`` read), its tags are single tokens, and making it again gives the same bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from factories import TOOL_TURN
from modelgrid_serving import tiny_model
from modelgrid_serving.tiny_model import COMPLETE_MARKER, TOOL_CALL_TOKENS, write_tiny_model

pytestmark = pytest.mark.integration

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "weather?"},
    *TOOL_TURN,
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def digests(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def test_the_template_renders_an_agents_history_in_hermes_format(model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    text = tokenizer.apply_chat_template(
        HISTORY, tools=TOOLS, tokenize=False, add_generation_prompt=True
    )
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    assert text.count("Be brief.") == 1  # folded into the tools block, not repeated
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
    )
    assert "<|tool|>\n<tool_response>\n12 C\n</tool_response>" in text
    assert text.endswith("<|assistant|>\n")
    plain = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert plain == "<s><|user|>\nhi</s>\n<|assistant|>\n"  # no tools: no tools block


def test_the_tool_call_tags_are_single_tokens_kept_when_decoding(model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert len(tokenizer) == tiny_model.VOCAB_SIZE
    ids = [tokenizer.convert_tokens_to_ids(tag) for tag in TOOL_CALL_TOKENS]
    assert ids == [tiny_model.VOCAB_SIZE - 2, tiny_model.VOCAB_SIZE - 1]
    encoded = tokenizer('<tool_call>{"a": 1}</tool_call>', add_special_tokens=False)["input_ids"]
    assert encoded[0] == ids[0] and encoded[-1] == ids[1]
    assert tokenizer.decode(encoded, skip_special_tokens=True) == '<tool_call>{"a": 1}</tool_call>'


def test_mlx_lm_reads_the_template_as_its_json_tools_format(model_dir: Path) -> None:
    from mlx_lm.tokenizer_utils import _infer_tool_parser
    from transformers import AutoTokenizer

    assert _infer_tool_parser(AutoTokenizer.from_pretrained(str(model_dir))) == "json_tools"


def test_making_it_again_gives_the_same_bytes(model_dir: Path, tmp_path: Path) -> None:
    assert digests(write_tiny_model(tmp_path / "again")) == digests(model_dir)


def test_a_model_of_an_older_format_is_made_again(model_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / COMPLETE_MARKER).write_text("complete\n")  # what format 1 wrote
    (old / "tokenizer_config.json").write_text("{}")
    assert digests(write_tiny_model(old)) == digests(model_dir)
