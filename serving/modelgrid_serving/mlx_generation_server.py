"""The MLX engine of an Apple pool: one model, tokens in, text and tool calls out, over HTTP.

``python -m modelgrid_serving.mlx_generation_server --model DIR --host 127.0.0.1 --port N`` runs
beside the pool's replicas: the pod's ``mlx-server`` container in a cluster, a child process of
``modelgrid up`` locally (:mod:`.mlx_sidecar`). One code path for both.

Why our own server and not mlx-lm's (``mlx_lm.server``, which this replaced): mlx-lm's server
takes no grammar, so it cannot hold a reply to a JSON schema (``response_format``, a named or
``required`` ``tool_choice``); it also rebuilt OpenAI's shapes that the replica then had to
normalise. Here the split is clean: the replica (:mod:`.engines.mlx`) owns the OpenAI protocol
(chat template, limits, ``n`` choices, tool-call shapes, usage) and sends the prompt's token ids;
this server owns only what needs MLX: sampling (mlx-lm's samplers and logits processors), the
grammar (:mod:`.mlx_grammar`), detokenising, stop words and mlx-lm's own tool-call parser for
the model (:mod:`.mlx_output` splits the text).

``POST /v1/generate`` answers NDJSON, one object a line: ``{"text": ...}`` content,
``{"tool_call": {"name", "arguments"}}`` a parsed call, and last ``{"finish_reason",
"completion_tokens"}`` (or ``{"error": ...}`` if generation failed after it began). A request
it refuses is a 400 with ``{"error": message}``. ``GET /health`` is 200 once the model is loaded.

Concurrent generations take turns token by token on one thread (:class:`Scheduler`), so every
stream moves as it is generated (an ``n``-choice request's choices too); each has its own random
key, so a seeded one repeats whatever runs beside it. Unlike mlx-lm's server it does not batch
them into one forward pass nor keep a prompt cache: throughput under concurrency is one
sequence's, shared.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import secrets
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .mlx_output import OutputSplitter, Piece

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
"""A prompt of a million token ids is about 8 MB of JSON; anything far larger is refused."""


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

    def generate(self, request: Generation, matcher: Any) -> Generator[dict[str, Any], None, None]:
        """The reply's lines; MLX runs only as they are asked for (on the scheduler's thread)."""
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_logits_processors

        from .mlx_grammar import GrammarProcessor

        processors = make_logits_processors(
            request.logit_bias,
            request.repetition_penalty,
            request.context_size,
            request.presence_penalty,
            request.context_size,
            request.frequency_penalty,
            request.context_size,
        )
        if matcher is not None:
            processors.append(GrammarProcessor(matcher, self.vocab_size))
        sampler = KeyedSampler(
            request, secrets.randbits(64) if request.seed is None else request.seed
        )
        splitter = OutputSplitter(stop=request.stop, call_tags=self.call_tags(request))
        finish, count = "length", 0
        for step in stream_generate(
            self.model,
            self.tokenizer,
            request.prompt,
            max_tokens=request.max_tokens,
            sampler=sampler,
            logits_processors=processors,
        ):
            count = step.generation_tokens
            yield from self.lines(splitter.feed(step.text), request)
            if splitter.stopped:
                finish = "stop"
                break
            finish = step.finish_reason or finish
        yield from self.lines(splitter.finish(), request)
        yield {"finish_reason": finish, "completion_tokens": count}

    def call_tags(self, request: Generation) -> tuple[str, str] | None:
        """The model's tool-call tags (mlx-lm knows them from its template), when the request
        asks for calls to be read and the model has a format."""
        wrapper = self.tokenizer
        if request.tools is None or not wrapper.has_tool_calling:
            return None
        return (wrapper.tool_call_start, wrapper.tool_call_end)

    def lines(self, pieces: list[Piece], request: Generation) -> Iterator[dict[str, Any]]:
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
    take turns would otherwise draw from each other's stream, and a seed would repeat nothing.
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
class _Turn:
    """One generation on the scheduler: its lines, where they go, and whether its reader left."""

    lines: Generator[dict[str, Any], None, None]
    out: queue.Queue[dict[str, Any] | None]
    cancelled: threading.Event


class Scheduler:
    """Runs every generation on one thread, one step of each in turn.

    MLX work stays on this thread (MLX streams and the model are not shared across threads);
    a handler thread only submits and reads its queue. ``None`` on a queue ends that reply.
    """

    def __init__(self) -> None:
        self._incoming: queue.Queue[_Turn] = queue.Queue()
        threading.Thread(target=self._run, name="mlx-generation", daemon=True).start()

    def submit(self, lines: Generator[dict[str, Any], None, None]) -> _Turn:
        """Queue a generation; read ``turn.out`` until ``None``; set ``turn.cancelled`` to stop."""
        turn = _Turn(lines, queue.Queue(), threading.Event())
        self._incoming.put(turn)
        return turn

    def _run(self) -> None:
        running: list[_Turn] = []
        while True:
            try:
                running.append(self._incoming.get(block=not running))
                while True:
                    running.append(self._incoming.get_nowait())
            except queue.Empty:
                pass
            running = [turn for turn in running if self._step(turn)]

    @staticmethod
    def _step(turn: _Turn) -> bool:
        """Advance ``turn`` by one line; False once it has ended."""
        try:
            if turn.cancelled.is_set():
                turn.lines.close()
                return False
            turn.out.put(next(turn.lines))
            return True
        except StopIteration:
            pass
        except Exception as exc:  # any failure: reported on the reply the client reads
            logger.exception("generation failed")
            turn.out.put({"error": f"generation failed: {exc}"})
        turn.out.put(None)
        return False


class Handler(BaseHTTPRequestHandler):
    """``GET /health`` and ``POST /v1/generate`` (see the module docstring)."""

    engine: Engine
    scheduler: Scheduler
    protocol_version = "HTTP/1.0"  # the reply ends when the connection closes: no chunking

    def do_GET(self) -> None:
        if self.path != "/health":
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        self._reply(HTTPStatus.OK, {"status": "ok"})

    def do_POST(self) -> None:
        if self.path != "/v1/generate":
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            request = Generation.from_body(self._body(), self.engine.vocab_size)
            matcher = self.engine.check(request)
        except BadRequest as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc), "field": exc.field})
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        turn = self.scheduler.submit(self.engine.generate(request, matcher))
        try:
            while (line := turn.out.get()) is not None:
                self.wfile.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            logger.info("the replica went away mid-generation; generation stopped")
            turn.cancelled.set()

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            raise BadRequest("a Content-Length header is required") from None
        if not 0 < length <= MAX_BODY_BYTES:
            raise BadRequest(f"the body must be 1 to {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(self.rfile.read(length))
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


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


def main(argv: list[str] | None = None) -> None:
    """Load the model, then serve until stopped (SIGTERM ends the process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model directory or Hugging Face id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Handler.engine = Engine(args.model)
    Handler.scheduler = Scheduler()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    logger.info("MLX generation server for %s on %s:%d", args.model, args.host, args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
