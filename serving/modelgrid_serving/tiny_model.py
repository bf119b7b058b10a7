"""A tiny Llama-style model for tests and demos, made locally with no download.

Random weights (2 layers, hidden size 128, about 1.6 MB) and a byte-level BPE tokenizer trained
here on a few hundred pseudo-words, with a chat template that knows tools (Hermes' format, read by
vLLM's ``hermes`` parser). vLLM (CPU and CUDA builds) and mlx-lm load it in seconds. Its output
is garbage by design: nothing may assert on generated words; tool calls are tested where the
engine constrains the output (a named or ``required`` ``tool_choice``).

``head_dim`` is 32 because vLLM's CPU attention crashes on first generation with 16.

``python -m modelgrid_serving.tiny_model DIR`` writes it: the init container of a pod serving
``builtin://tiny-llama`` runs that on the pod's serving image, which holds this package (and
torch) but need not hold the ``modelgrid`` command.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

VOCAB_SIZE = 512
MAX_POSITIONS = 2048
TOOL_CALL_TOKENS = ("<tool_call>", "</tool_call>")
"""Hermes' tool-call tags, single tokens of the vocabulary as in Hermes and Qwen models (not
special: a reply keeps them when decoded, so a parser finds them)."""
TOOL_CALL_PARSER = "hermes"
"""The vLLM tool-call parser that reads what :data:`CHAT_TEMPLATE` teaches: ``<tool_call>{"name":
..., "arguments": {...}}</tool_call>``."""
CHAT_TEMPLATE = """\
{{- bos_token }}
{%- if tools %}
{{- '<|system|>\\n' }}
{%- if messages[0].role == 'system' %}{{ messages[0].content ~ '\\n\\n' }}{% endif %}
{{- 'Tools:\\n<tools>' }}
{%- for tool in tools %}{{ '\\n' ~ (tool | tojson) }}{% endfor %}
{{- '\\n</tools>\\nCall one as <tool_call>\\n{"name": <name>, "arguments": <object>}\\n'
    '</tool_call>' ~ eos_token ~ '\\n' }}
{%- endif %}
{%- for m in messages %}
{%- if m.role == 'system' and tools and loop.first %}
{%- elif m.role == 'assistant' and m.tool_calls is defined and m.tool_calls %}
{{- '<|assistant|>\\n' }}{% if m.content %}{{ m.content }}{% endif %}
{%- for tool_call in m.tool_calls %}
{%- if tool_call.function is defined %}{% set tool_call = tool_call.function %}{% endif %}
{{- '<tool_call>\\n{"name": ' ~ (tool_call.name | tojson) ~ ', "arguments": ' }}
{%- if tool_call.arguments is string %}{{ tool_call.arguments }}
{%- else %}{{ tool_call.arguments | tojson }}{% endif %}
{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- eos_token ~ '\\n' }}
{%- elif m.role == 'tool' %}
{{- '<|tool|>\\n<tool_response>\\n' ~ m.content ~ '\\n</tool_response>' ~ eos_token ~ '\\n' }}
{%- else %}
{{- '<|' ~ m.role ~ '|>\\n' ~ (m.content or '') ~ eos_token ~ '\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}
"""
"""Each message as ``<|role|>`` and its text; with ``tools``, a system block listing them and
the Hermes format (:data:`TOOL_CALL_PARSER`) for calls; assistant ``tool_calls`` and ``tool``
results in that same format, so an agent's second turn renders as the model would have written
it. Written as Qwen's templates are (``tool_call.name``), which mlx-lm's server recognises as
this format too."""
COMPLETE_MARKER = ".modelgrid-tiny-model"
"""Written last: a directory holding it is a complete model (a crashed run leaves none)."""
FORMAT = "2"
"""What the marker says: raised whenever the files written change (2: tool calls), so a model
made by an older version is made again rather than served with its old template."""

_SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
_WORDS = [
    "hello",
    "world",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "a",
    "model",
    "serves",
    "tokens",
    "user",
    "assistant",
    "system",
    "say",
    "count",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "what",
    "is",
    "your",
    "name",
    "please",
    "answer",
    "briefly",
    "yes",
    "no",
    "ok",
    "test",
    "stream",
    "chat",
    "completion",
]


def write_tiny_model(path: Path) -> Path:
    """Write the tiny model into ``path`` (created if missing) unless it is already there.

    Args:
        path: The model directory.

    Returns:
        ``path``, holding ``config.json``, ``model.safetensors`` and the tokenizer files.
    """
    path = Path(path)
    if is_complete(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target, then rename: concurrent or interrupted runs never leave half a model.
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    staging.chmod(0o755)
    try:
        _write_tokenizer(staging)
        _write_weights(staging)
        (staging / COMPLETE_MARKER).write_text(f"complete {FORMAT}\n")
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if is_complete(path):  # another process won the race
            return path
        raise
    return path


def is_complete(path: Path) -> bool:
    """True when ``path`` holds a whole tiny model of the current :data:`FORMAT`."""
    try:
        return (path / COMPLETE_MARKER).read_text() == f"complete {FORMAT}\n"
    except OSError:
        return False


def _corpus() -> list[str]:
    rng = random.Random(0)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    rotations = [" ".join(_WORDS[i:] + _WORDS[:i]) for i in range(len(_WORDS))] * 20
    # Pseudo-words so that BPE can fill all the vocabulary's slots.
    pseudo = [
        " ".join("".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(30))
        for _ in range(400)
    ]
    return rotations + _tool_texts(rng) * 10 + pseudo


_SCHEMA_WORDS = ("string", "integer", "number", "boolean", "object", "array")


def _tool_texts(rng: random.Random) -> list[str]:
    """Tool definitions and calls as the chat template writes them, so that BPE learns JSON's
    punctuation and JSON Schema's words: a prompt with tools then fits the small contexts tests
    and examples run with."""
    texts = []
    for _ in range(40):
        name = "_".join(rng.sample(_WORDS, 2))
        fields = rng.sample(_WORDS, 2)
        properties = {f: {"type": rng.choice(_SCHEMA_WORDS), "description": f} for f in fields}
        function = {
            "name": name,
            "description": " ".join(rng.sample(_WORDS, 4)),
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": fields[:1],
                "additionalProperties": False,
            },
        }
        texts.append(json.dumps({"type": "function", "function": function}))
        arguments = {f: rng.choice(_WORDS) for f in fields}
        texts.append(
            f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"
        )
    return texts


def _write_tokenizer(out: Path) -> None:
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(TOOL_CALL_TOKENS),  # the tags take the last ids
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_CALL_TOKENS])
    bos_id = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(  # prepend BOS like Llama
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=MAX_POSITIONS,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(str(out))
    # One source for the template: inside tokenizer_config.json, where older loaders look.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    (out / "chat_template.jinja").unlink(missing_ok=True)


def _write_weights(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars are noise in a CLI

    special = {name: _SPECIAL.index(name) for name in _SPECIAL}
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=32,  # vLLM's CPU attention needs head_dim >= 32
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=special["<s>"],
        eos_token_id=special["</s>"],
        pad_token_id=special["<pad>"],
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(str(out), safe_serialization=True)
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["rope_theta"] = 10000.0  # legacy key for older loaders
    cfg_path.write_text(json.dumps(cfg, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Write the tiny model into the directory named on the command line; print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m modelgrid_serving.tiny_model",
        description="Generate the tiny test model (no download); reused when already complete.",
    )
    parser.add_argument("dir", type=Path, help="output directory")
    print(write_tiny_model(parser.parse_args(argv).dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
