"""``tool_call_parser``: off, named, or ``auto`` read off the model's files, and the vLLM
arguments each choice becomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelgrid_serving.engines.vllm import tool_calling_kwargs
from modelgrid_serving.tiny_model import CHAT_TEMPLATE, TOOL_CALL_PARSER
from modelgrid_serving.tool_parsers import (
    ModelFiles,
    ParserChoice,
    choose_tool_parser,
    read_model_files,
)

pytestmark = pytest.mark.unit

LLAMA31 = "{{- bos_token }}{%- if tools %}<|python_tag|>{{ tools | tojson }}{% endif %}"
QWEN3_CODER = "<tool_call>\n<function={{ name }}>\n<parameter=x>"


def files(template: str | None = None, *architectures: str) -> ModelFiles:
    return ModelFiles(template, "tokenizer_config.json", architectures)


def never_read() -> ModelFiles:
    raise AssertionError("the model's files were read for a setting that does not need them")


def test_unset_is_off_and_reads_nothing() -> None:
    choice = choose_tool_parser(None, never_read)
    assert choice.parser is None and "off" in choice.reason


def test_a_named_parser_is_taken_as_named_and_reads_nothing() -> None:
    assert choose_tool_parser("mistral", never_read) == ParserChoice(
        "mistral", "named in spec.toolCalling.parser"
    )


@pytest.mark.parametrize(
    ("template", "parser", "marker"),
    [
        (CHAT_TEMPLATE, TOOL_CALL_PARSER, "<tool_call>"),
        (LLAMA31, "llama3_json", "<|python_tag|>"),
        ("{{ '[TOOL_CALLS]' }}", "mistral", "[TOOL_CALLS]"),
        (QWEN3_CODER, "qwen3_coder", "<function="),
    ],
)
def test_auto_reads_the_chat_templates_markers(template: str, parser: str, marker: str) -> None:
    choice = choose_tool_parser("auto", lambda: files(template, "LlamaForCausalLM"))
    assert choice.parser == parser
    assert marker in choice.reason and "tokenizer_config.json" in choice.reason


def test_auto_falls_back_to_the_architecture() -> None:
    choice = choose_tool_parser("auto", lambda: files("{{ messages }}", "Qwen2ForCausalLM"))
    assert choice == ParserChoice("hermes", "auto: architecture Qwen2ForCausalLM (config.json)")


def test_auto_without_a_sign_is_off_and_says_what_to_do() -> None:
    choice = choose_tool_parser("auto", lambda: files(None, "GPT2LMHeadModel"))
    assert choice.parser is None
    assert "GPT2LMHeadModel" in choice.reason and "spec.toolCalling.parser" in choice.reason


def test_the_tiny_models_files_choose_hermes(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    model = read_model_files(str(tmp_path))
    assert model == ModelFiles(CHAT_TEMPLATE, "tokenizer_config.json", ("LlamaForCausalLM",))


def test_read_prefers_the_jinja_file_and_joins_named_templates(tmp_path: Path) -> None:
    named = [{"name": "default", "template": "plain"}, {"name": "tool_use", "template": LLAMA31}]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": named}))
    joined = read_model_files(str(tmp_path)).chat_template
    assert joined is not None and "plain" in joined and "<|python_tag|>" in joined
    (tmp_path / "chat_template.jinja").write_text("{{ '[TOOL_CALLS]' }}")
    assert read_model_files(str(tmp_path)).template_origin == "chat_template.jinja"


def test_a_configured_template_wins_inline_or_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": LLAMA31}))
    inline = read_model_files(str(tmp_path), chat_template=CHAT_TEMPLATE)
    assert inline.chat_template == CHAT_TEMPLATE and inline.template_origin == "spec.chatTemplate"
    mounted = tmp_path / "mounted.jinja"
    mounted.write_text(QWEN3_CODER)
    assert read_model_files(str(tmp_path), chat_template=str(mounted)).chat_template == QWEN3_CODER


@pytest.mark.parametrize("source", ["s3://bucket/model", "/does/not/exist"])
def test_unreadable_sources_give_nothing_not_an_error(source: str) -> None:
    assert read_model_files(source) == ModelFiles(None, "tokenizer_config.json", ())


def test_broken_files_give_nothing_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    (tmp_path / "config.json").write_text("[1, 2]")
    assert read_model_files(str(tmp_path)) == ModelFiles(None, "tokenizer_config.json", ())


def test_a_choice_becomes_vllms_automatic_tool_choice_or_nothing() -> None:
    assert tool_calling_kwargs(ParserChoice("hermes", "x")) == {
        "enable_auto_tool_choice": True,
        "tool_call_parser": "hermes",
    }
    assert tool_calling_kwargs(ParserChoice(None, "off")) == {}
