"""MLX generation for the Apple pools' sidecar: requests, the model, continuous batching.

What needs MLX and nothing else (the replica, :mod:`.engines.mlx`, owns the OpenAI protocol):
a :class:`Generation` is one sequence from the prompt's token ids; the :class:`Scheduler` runs
every sequence in flight in mlx-lm's ``BatchGenerator`` (continuous batching: one forward pass
for all of them, sequences joining and leaving between steps), each with its own sampler
(:class:`KeyedSampler`: its own random key, so a seed repeats whatever runs beside it) and its
own logits processors (penalties, ``logit_bias``, the grammar of :mod:`.mlx_grammar`). Each new
token is detokenised with mlx-lm's streaming detokenizer and split (:mod:`.mlx_output`) into
content, tool-call text (read by mlx-lm's parser for the model) and stop words, as the lines the
server sends (:mod:`.mlx_generation_server`).
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .mlx_output import OutputSplitter, Piece

logger = logging.getLogger(__name__)

Line = dict[str, Any]
"""One line of a reply: ``{"text"}``, ``{"tool_call"}``, ``{"finish_reason",
"completion_tokens"}`` or ``{"error"}``."""


class BadRequest(ValueError):
    """The request cannot be served as sent; the message says why, ``field`` names the body's
    field at fault (the replica maps it to the client's parameter)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Generation:
    """One generation request, checked (the replica sends validated values; this server
    listens on the pod's loopback only, yet still refuses what would break the generator)."""

    prompt: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    logit_bias: dict[int, float] | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    context_size: int = 20
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    """Read tool calls in the model's format (mlx-lm's parser) and pass these to it."""

    @classmethod
    def from_body(cls, body: Any, vocab_size: int) -> Generation:
        """Raises: BadRequest naming the field."""
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        prompt = body.get("prompt")
        if (
            not isinstance(prompt, list)
            or not prompt
            or not all(isinstance(t, int) and 0 <= t < vocab_size for t in prompt)
        ):
            raise BadRequest("prompt: a non-empty list of token ids of this model", "prompt")
        return cls(
            prompt=prompt,
            max_tokens=_number(body, "max_tokens", int, required=True, low=1),
            temperature=_number(body, "temperature", float, default=1.0, low=0),
            top_p=_number(body, "top_p", float, default=1.0, low=0),
            top_k=_number(body, "top_k", int, default=0, low=0),
            min_p=_number(body, "min_p", float, default=0.0, low=0),
            seed=_number(body, "seed", int, default=None, low=0),
            logit_bias=_logit_bias(body.get("logit_bias"), vocab_size),
            repetition_penalty=_number(body, "repetition_penalty", float, default=None),
            presence_penalty=_number(body, "presence_penalty", float, default=None),
            frequency_penalty=_number(body, "frequency_penalty", float, default=None),
            context_size=_number(body, "context_size", int, default=20, low=1),
            stop=_strings(body.get("stop")),
            json_schema=_object_or_none(body, "json_schema"),
            tools=_list_or_none(body, "tools"),
        )


class Engine:
    """The loaded model and what generation needs of it."""

    def __init__(self, model: str) -> None:
        from mlx_lm import load

        from .mlx_grammar import GrammarTokenizer

        self.model, self.tokenizer = load(model)
        args = getattr(self.model, "args", None)
        self.vocab_size = int(getattr(args, "vocab_size", 0) or len(self.tokenizer._tokenizer))
        self.grammar = GrammarTokenizer(self.tokenizer._tokenizer, self.vocab_size)

    def check(self, request: Generation) -> Any:
        """The grammar's matcher (or None), made before the reply starts so a bad schema is a
        400. Raises: BadRequest."""
        from .mlx_grammar import GrammarError

        if request.json_schema is None:
            return None
        try:
            return self.grammar.matcher(request.json_schema)
        except GrammarError as exc:
            raise BadRequest(str(exc), "json_schema") from None

    def new_batch(self) -> Any:
        """An empty continuous batch that ends a sequence at the model's end-of-sequence."""
        from mlx_lm.generate import BatchGenerator

        eos = [[token] for token in sorted(self.tokenizer.eos_token_ids)]
        return BatchGenerator(self.model, stop_tokens=eos)

    def insert(self, batch: Any, turn: Turn) -> int:
        """Put ``turn`` into ``batch`` with its sampler and processors; its uid there."""
        from mlx_lm.sample_utils import make_logits_processors

        from .mlx_grammar import GrammarProcessor

        request = turn.request
        processors = make_logits_processors(
            request.logit_bias,
            request.repetition_penalty,
            request.context_size,
            request.presence_penalty,
            request.context_size,
            request.frequency_penalty,
            request.context_size,
        )
        if turn.matcher is not None:
            processors.append(
                GrammarProcessor(turn.matcher, self.vocab_size, self.tokenizer.eos_token_ids)
            )
        seed = secrets.randbits(64) if request.seed is None else request.seed
        turn.detokenizer = self.tokenizer.detokenizer  # a fresh copy per caller
        turn.splitter = OutputSplitter(stop=request.stop, call_tags=self.call_tags(request))
        (uid,) = batch.insert(
            [request.prompt],
            max_tokens=[request.max_tokens],
            samplers=[KeyedSampler(request, seed)],
            logits_processors=[processors],
        )
        return int(uid)

    def advance(self, turn: Turn, token: int, finish: str | None) -> list[Line]:
        """The lines one generated token gives: its text (an end-of-sequence has none), and
        the end when the batch ended the sequence or a stop word did."""
        assert turn.splitter is not None
        turn.tokens += 1
        if finish != "stop":  # "stop" from the batch is an end-of-sequence token
            turn.detokenizer.add_token(token)
        if finish is not None:
            turn.detokenizer.finalize()
        lines = list(self.lines(turn.splitter.feed(turn.detokenizer.last_segment), turn.request))
        if turn.splitter.stopped:
            finish = "stop"
        if finish is not None:
            lines += self.lines(turn.splitter.finish(), turn.request)
            lines.append({"finish_reason": finish, "completion_tokens": turn.tokens})
        return lines

    def call_tags(self, request: Generation) -> tuple[str, str] | None:
        """The model's tool-call tags (mlx-lm knows them from its template), when the request
        asks for calls to be read and the model has a format."""
        wrapper = self.tokenizer
        if request.tools is None or not wrapper.has_tool_calling:
            return None
        return (wrapper.tool_call_start, wrapper.tool_call_end)

    def lines(self, pieces: list[Piece], request: Generation) -> Iterator[Line]:
        """The reply's lines for split output: text as it is, a call parsed by mlx-lm."""
        for piece in pieces:
            if piece.kind == "text":
                yield {"text": piece.text}
                continue
            calls = self._parse_call(piece.text, request)
            if calls is None:  # not a call after all: the client sees what the model wrote
                start, end = self.call_tags(request) or ("", "")
                yield {"text": f"{start}{piece.text}{end}"}
            for call in calls or ():
                yield {"tool_call": call}

    def _parse_call(self, text: str, request: Generation) -> list[dict[str, str]] | None:
        """mlx-lm's parser for this model's format; None when the text is not a call."""
        try:
            parsed = self.tokenizer.tool_parser(text, request.tools)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.info("generated tool-call text does not parse (%s): %r", exc, text[:200])
            return None
        calls = []
        for call in parsed if isinstance(parsed, list) else [parsed]:
            name = call.get("name") if isinstance(call, dict) else None
            if not isinstance(name, str) or not name:
                return None
            arguments = call.get("arguments", {})
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            calls.append({"name": name, "arguments": arguments})
        return calls


class KeyedSampler:
    """mlx-lm's sampling with a random key of its own, not MLX's global one: generations that
    share a batch would otherwise draw from each other's stream, and a seed would repeat nothing.
    The filters are mlx-lm's (``make_sampler``'s chain, less XTC, which OpenAI has not); only
    the draw is ours, from an explicit key (MLX has no setter for its global key)."""

    def __init__(self, request: Generation, seed: int) -> None:
        import mlx.core as mx
        from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p

        self._temperature = request.temperature
        self._filters: list[Any] = []
        if 0 < request.top_p < 1:
            self._filters.append(lambda x: apply_top_p(x, request.top_p))
        if request.min_p:
            self._filters.append(lambda x: apply_min_p(x, request.min_p))
        if request.top_k > 0:
            self._filters.append(lambda x: apply_top_k(x, request.top_k))
        self._key = mx.random.key(seed)

    def __call__(self, logprobs: Any) -> Any:
        import mlx.core as mx

        if self._temperature == 0:
            return mx.argmax(logprobs, axis=-1)
        for keep in self._filters:
            logprobs = keep(logprobs)
        self._key, draw = mx.random.split(self._key)
        return mx.random.categorical(logprobs * (1 / self._temperature), key=draw)


@dataclass
class Turn:
    """One sequence in flight: where its lines go (``None`` ends them), and whether its reader
    left (then it is dropped from the batch)."""

    request: Generation
    matcher: Any
    out: queue.Queue[Line | None] = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    detokenizer: Any = None
    splitter: OutputSplitter | None = None
    tokens: int = 0


class Scheduler:
    """Runs every sequence on one thread, in mlx-lm's continuous batch.

    MLX work stays on this thread (the model, its caches and MLX's streams are not shared across
    threads); a handler thread submits and reads its :class:`Turn`'s queue. A failure of the
    batch ends every sequence in it with an error line and starts a fresh batch.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._incoming: queue.Queue[Turn | None] = queue.Queue()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mlx-generation", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether generation can go on (the health check's answer)."""
        return self._thread.is_alive()

    def submit(self, request: Generation, matcher: Any) -> Turn:
        """Queue a sequence; read ``turn.out`` until ``None``; set ``turn.cancelled`` to stop."""
        turn = Turn(request, matcher)
        self._incoming.put(turn)
        return turn

    def stop(self) -> None:
        """End every sequence in flight and the thread (the server is going away)."""
        self._incoming.put(None)
        self._thread.join()

    def _run(self) -> None:
        batch = self._engine.new_batch()
        running: dict[int, Turn] = {}
        while not self._stopping:
            for turn in self._arrivals(block=not running):
                running[self._engine.insert(batch, turn)] = turn
            gone = [uid for uid, turn in running.items() if turn.cancelled.is_set()]
            if gone:
                batch.remove(gone)
                for uid in gone:
                    del running[uid]
            if not running:
                continue
            try:
                steps = batch.next_generated()
            except Exception as exc:  # the batch is broken: every sequence in it ends
                logger.exception("generation failed")
                for turn in running.values():
                    turn.out.put({"error": f"generation failed: {exc}"})
                    turn.out.put(None)
                running.clear()
                batch = self._engine.new_batch()
                continue
            for step in steps:
                turn = running.get(step.uid)
                if turn is None:
                    continue
                done = False
                for line in self._engine.advance(turn, step.token, step.finish_reason):
                    turn.out.put(line)
                    done = done or "finish_reason" in line
                if done:
                    turn.out.put(None)
                    del running[step.uid]
                    if step.finish_reason is None:  # ended here (a stop word): out of the batch
                        batch.remove([step.uid])
        for turn in running.values():
            turn.out.put({"error": "the MLX server is stopping"})
            turn.out.put(None)

    def _arrivals(self, *, block: bool) -> list[Turn]:
        """New sequences (waiting for one when none runs); ``None`` among them stops the loop."""
        arrived: list[Turn | None] = []
        try:
            arrived.append(self._incoming.get(block=block))
            while True:
                arrived.append(self._incoming.get_nowait())
        except queue.Empty:
            pass
        self._stopping = self._stopping or None in arrived
        return [turn for turn in arrived if turn is not None]


def _number(
    body: dict[str, Any],
    name: str,
    kind: type,
    *,
    default: Any = None,
    required: bool = False,
    low: float | None = None,
) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required", name)
        return default
    accepted = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise BadRequest(f"{name} must be a number{' (an integer)' if kind is int else ''}", name)
    if low is not None and value < low:
        raise BadRequest(f"{name} must be at least {low}", name)
    return kind(value)


def _logit_bias(value: Any, vocab_size: int) -> dict[int, float] | None:
    if value is None:
        return None
    try:
        bias = {int(k): float(v) for k, v in dict(value).items()}
    except (TypeError, ValueError):
        raise BadRequest("logit_bias: token ids to numbers", "logit_bias") from None
    if any(not 0 <= token < vocab_size for token in bias):
        raise BadRequest("logit_bias: a token id outside this model's vocabulary", "logit_bias")
    return bias


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest("stop: a list of strings", "stop")
    return tuple(value)


def _object_or_none(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object", name)
    return value


def _list_or_none(body: dict[str, Any], name: str) -> list[dict[str, Any]] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, list):
        raise BadRequest(f"{name} must be a list", name)
    return value
