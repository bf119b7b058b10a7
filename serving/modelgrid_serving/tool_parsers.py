"""Which vLLM tool-call parser a replica runs, and why: named in the spec, or read off the model.

``tool_call_parser: auto`` is resolved here, in the replica, before vLLM starts: the replica is
where the model's files are (a mounted volume, a local path, the Hugging Face cache). What the
chat template writes around a call is the surest sign (a model answers in the format its
template shows it); the architecture in ``config.json`` is the fallback. The choice and its
reason are shown on the model card (``GET /v1/models/{id}``), so a user sees why tools work or
do not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import AUTO_PARSER

logger = logging.getLogger(__name__)

TEMPLATE_MARKERS: tuple[tuple[str, str], ...] = (
    ("<function=", "qwen3_coder"),  # Qwen3-Coder: <tool_call><function=name><parameter=...>
    ("<tool_call>", "hermes"),  # Hermes 2/3, Qwen 2.5/3, and modelgrid's tiny model
    ("<|python_start|>", "llama4_pythonic"),
    ("<|python_tag|>", "llama3_json"),  # Llama 3.1-3.3
    ("[TOOL_CALLS]", "mistral"),
    ("<｜tool▁calls▁begin｜>", "deepseek_v3"),
    ("<|action_start|><|plugin|>", "internlm"),
    ("<|tool_call|>", "granite"),
    ("<|channel|>", "openai"),  # gpt-oss (harmony)
)
"""Text a chat template writes around a tool call -> the parser that reads it; first match wins
(more specific markers first: Qwen3-Coder's template also holds ``<tool_call>``)."""

ARCHITECTURES: dict[str, str] = {
    "Qwen2ForCausalLM": "hermes",
    "Qwen2MoeForCausalLM": "hermes",
    "Qwen3ForCausalLM": "hermes",
    "Qwen3MoeForCausalLM": "hermes",
    "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mistral",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "GraniteForCausalLM": "granite",
    "InternLM2ForCausalLM": "internlm",
    "JambaForCausalLM": "jamba",
    "GptOssForCausalLM": "openai",
}
"""``config.json`` ``architectures[0]`` -> parser, for a model whose template shows no marker."""


@dataclass(frozen=True)
class ParserChoice:
    """The parser a replica runs (None: no automatic tool choice) and why, in one line."""

    parser: str | None
    reason: str


@dataclass(frozen=True)
class ModelFiles:
    """What detection reads of a model: its chat template(s) and architectures."""

    chat_template: str | None
    template_origin: str
    """Where the template came from, for the reason (``tokenizer_config.json``...)."""
    architectures: tuple[str, ...] = ()


def choose_tool_parser(setting: str | None, files: Callable[[], ModelFiles]) -> ParserChoice:
    """The tool-call parser for a setting: as named, off, or detected from the model's files.

    Args:
        setting: ``None`` (off), ``"auto"``, or a parser name (already checked against vLLM's).
        files: Reads the model's files; called only for ``auto``.
    """
    if setting is None:
        return ParserChoice(None, "tool calling is off (spec.toolCalling is not set)")
    if setting != AUTO_PARSER:
        return ParserChoice(setting, "named in spec.toolCalling.parser")
    model = files()
    if model.chat_template:
        for marker, parser in TEMPLATE_MARKERS:
            if marker in model.chat_template:
                return ParserChoice(
                    parser, f"auto: the chat template ({model.template_origin}) writes {marker}"
                )
    for architecture in model.architectures:
        if architecture in ARCHITECTURES:
            return ParserChoice(
                ARCHITECTURES[architecture], f"auto: architecture {architecture} (config.json)"
            )
    seen = model.template_origin if model.chat_template else "no chat template"
    return ParserChoice(
        None,
        f"auto: no known tool-call format in the model's files ({seen}; architectures "
        f"{', '.join(model.architectures) or 'unknown'}); name a parser in "
        "spec.toolCalling.parser",
    )


def read_model_files(
    source: str, *, revision: str | None = None, chat_template: str | None = None
) -> ModelFiles:
    """The chat template and architectures of a model, from a directory or the Hugging Face
    cache (or Hub, unless offline); an object-store source is fetched by the engine later, so
    only a configured template is read for it. Unreadable files give nothing, never an error.

    Args:
        source: What the engine loads: a directory, a Hugging Face id, an object-store URI.
        revision: The Hugging Face revision.
        chat_template: The configured template (text, or a file in the replica); wins over the
            model's own.
    """
    read: Callable[[str], str | None]
    if source.startswith("/"):
        read = _directory_reader(Path(source))
    elif "://" in source:
        read = _nothing
    else:
        read = _hub_reader(source, revision)
    config = _json(read("config.json"))
    architectures = tuple(a for a in config.get("architectures") or () if isinstance(a, str))
    if chat_template:
        return ModelFiles(_configured(chat_template), "spec.chatTemplate", architectures)
    jinja = read("chat_template.jinja")
    if jinja:
        return ModelFiles(jinja, "chat_template.jinja", architectures)
    template = _json(read("tokenizer_config.json")).get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "tool_use", "template": ...}]
        template = "\n".join(str(t.get("template", "")) for t in template if isinstance(t, dict))
    text = template if isinstance(template, str) and template else None
    return ModelFiles(text, "tokenizer_config.json", architectures)


def _configured(chat_template: str) -> str:
    """A configured template as vLLM reads it: a path when it names a file, else the text."""
    if "{" not in chat_template and "\n" not in chat_template:
        try:
            return Path(chat_template).read_text()
        except OSError:
            return chat_template
    return chat_template


def _directory_reader(directory: Path) -> Callable[[str], str | None]:
    def read(name: str) -> str | None:
        try:
            return (directory / name).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    return read


def _nothing(_: str) -> None:
    return None


def _hub_reader(repo: str, revision: str | None) -> Callable[[str], str | None]:
    def read(name: str) -> str | None:
        try:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo, name, revision=revision)).read_text()
        except Exception as exc:  # noqa: BLE001 - offline, missing file, gated: read nothing
            logger.debug("no %s for %s: %s", name, repo, exc)
            return None

    return read


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
