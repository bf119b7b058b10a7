"""Constrained decoding on MLX: a JSON Schema as a grammar that masks the model's logits.

The grammar library is **llguidance** (guidance-ai), not a hand-written matcher. Why it and not
xgrammar or outlines-core, the other two in reach: it is one of vLLM's own structured-output
backends, so a schema means the same on both engines of one model name; it reads a Hugging Face
fast tokenizer directly (``llguidance.hf``) and ships an MLX integration (``llguidance.mlx``), so
nothing torch-shaped is needed on an Apple node; it compiles a schema lazily (no up-front
automaton over the vocabulary: a new schema per request costs milliseconds) and reports an
unsupported or broken schema as an error instead of raising mid-generation.

The mask is applied with plain ``mlx.core`` operations rather than ``llguidance.mlx``'s Metal
kernel: that kernel needs Metal, and the same code must run on ``mlx[cpu]`` (tests, Linux).
"""

from __future__ import annotations

from typing import Any

import llguidance
import llguidance.hf
import mlx.core as mx
import numpy as np
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

JSON_OPTIONS: llguidance.JsonCompileOptions = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}
"""JSON written as ``json.dumps`` writes it: no runs of whitespace for a random model to fill
(with flexible whitespace a weak model spends its tokens on newlines)."""


class GrammarError(ValueError):
    """The schema cannot be compiled (broken, or using what the library does not support)."""


class GrammarTokenizer:
    """llguidance's view of a model's tokenizer, made once per server (about a second)."""

    def __init__(self, hf_tokenizer: Any, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        try:
            self._tokenizer: llguidance.LLTokenizer | None = llguidance.hf.from_tokenizer(
                hf_tokenizer, n_vocab=vocab_size
            )
            self._why_not = ""
        except (ValueError, TypeError) as exc:  # a slow (Python) tokenizer: no grammar
            self._tokenizer, self._why_not = None, str(exc)

    def matcher(self, schema: dict[str, Any]) -> llguidance.LLMatcher:
        """A fresh matcher for one generation held to ``schema``.

        Raises:
            GrammarError: the schema does not compile, or the tokenizer cannot be read.
        """
        if self._tokenizer is None:
            raise GrammarError(f"constrained decoding needs a fast tokenizer: {self._why_not}")
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)
        except ValueError as exc:
            raise GrammarError(f"the JSON schema is not valid: {exc}") from None
        matcher = llguidance.LLMatcher(self._tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise GrammarError(f"the JSON schema cannot be used: {matcher.get_error()}")
        return matcher


class GrammarProcessor:
    """An mlx-lm logits processor: only tokens the grammar allows next can be sampled.

    mlx-lm calls it before each sampled token with every token so far (the prompt, then what
    was generated); the last one is the token sampled after the previous call. Once the grammar
    is complete, or has failed (a limit of the library), only an end of sequence is allowed: the
    output ends rather than running on unconstrained.
    """

    def __init__(
        self, matcher: llguidance.LLMatcher, vocab_size: int, eos_token_ids: frozenset[int]
    ) -> None:
        self._matcher = matcher
        self._bitmask = allocate_token_bitmask(1, vocab_size)
        self._eos = np.zeros(vocab_size, dtype=np.bool_)
        self._eos[[t for t in eos_token_ids if 0 <= t < vocab_size]] = True
        self._started = False

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        if self._started:
            self._matcher.consume_token(int(tokens[-1].item()))
        self._started = True
        if self._matcher.is_error() or self._matcher.is_stopped():
            allowed = self._eos
        else:
            fill_next_token_bitmask(self._matcher, self._bitmask)
            allowed = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little").astype(
                np.bool_
            )
        return mx.where(mx.array(allowed[: logits.shape[-1]]), logits, -mx.inf)
