"""MLX through its generation server: our :class:`~modelgrid_serving.engines.base.Engine` over HTTP.

An Apple pool's replica does not run MLX itself: the MLX generation server
(:mod:`modelgrid_serving.mlx_generation_server`) runs beside it (in a pod on an Apple node; a
child process of ``modelgrid up``), and this engine talks to it at ``PoolConfig.mlx_server_url``.
Why a separate process and not MLX in the replica: see docs/serving.md ("The MLX engine").

The replica keeps the OpenAI protocol: names and aliases, validation, the chat template and the
context-length check (with the model's own tokenizer), ``n`` choices as ``n`` generations merged
into one reply (:mod:`.mlx_choices`), tool-call shapes, the parameters MLX cannot honour refused
by name (:mod:`.mlx_translation`), errors, metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from ..config import AppConfig
from ..errors import (
    APIError,
    EngineError,
    InvalidRequest,
    ModelNotReady,
    UnsupportedForModel,
)
from ..protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from .base import EngineOutput
from .events import DONE, StreamEvent, chunk_event, until_end
from .mlx_choices import ChoiceAssembler, Stamp, chunk, reply, usage
from .mlx_translation import Plan, PromptEncoder, Target, to_mlx_chat, to_mlx_completion

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0
_HEALTH_TIMEOUT_S = 5.0
_DEFAULT_MAX_MODEL_LEN = 4096
"""When neither the config nor the model's config.json says: a conservative context."""


class TokenizerEncoder:
    """Encodes prompts with the model's tokenizer and chat template, from the model's files
    (the same path as its MLX server)."""

    def __init__(self, model_dir: str) -> None:
        from transformers import AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"the MLX replica needs the model's tokenizer at {model_dir} (the same path as "
                f"its MLX server; it encodes the prompts): {exc}"
            ) from exc
        ids = {self._tokenizer.eos_token_id}
        for name in ("config.json", "generation_config.json"):
            ids.update(_as_ids(_read_json(Path(model_dir) / name).get("eos_token_id")))
        self.eos_token_ids = frozenset(i for i in ids if isinstance(i, int))

    def encode_chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> list[int]:
        try:
            text = self._tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # noqa: BLE001 - the template refuses these messages
            raise InvalidRequest(
                f"The chat template rejected the messages: {exc}", param="messages"
            ) from None
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def encode_text(self, prompt: str) -> list[int]:
        return list(self._tokenizer.encode(prompt))


def model_max_len(config: AppConfig) -> int:
    """The context length: the config's, else the model's ``max_position_embeddings``."""
    if config.max_model_len:
        return config.max_model_len
    found = _read_json(Path(config.model_source) / "config.json").get("max_position_embeddings")
    return int(found) if isinstance(found, int) else _DEFAULT_MAX_MODEL_LEN


class MLXEngine:
    """Talks to one MLX generation server; one instance per replica, used from the replica's
    event loop."""

    kind = "mlx"

    def __init__(self, config: AppConfig, *, encoder: PromptEncoder | None = None) -> None:
        pool = config.pool
        if not pool.mlx_server_url:
            raise ValueError(f"pool {pool.name}: an MLX pool needs mlx_server_url")
        self._url = pool.mlx_server_url.rstrip("/")
        self._model = config.model_name
        self._target = Target(
            max_model_len=model_max_len(config),
            encoder=encoder or TokenizerEncoder(config.model_source),
        )
        self.version = _installed_version("mlx-lm")
        self._session: Any = None

    def max_model_len(self) -> int | None:
        return self._target.max_model_len

    async def chat(self, request: ChatCompletionRequest) -> EngineOutput:
        plan = to_mlx_chat(request, self._target)
        return await self._generate(plan, chat=True, stream=bool(request.stream))

    async def completions(self, request: CompletionRequest) -> EngineOutput:
        plan = to_mlx_completion(request, self._target)
        return await self._generate(plan, chat=False, stream=bool(request.stream))

    async def embeddings(self, request: EmbeddingRequest) -> dict[str, Any]:
        raise UnsupportedForModel(
            f"The model '{self._model}' does not support embeddings: its MLX engine serves "
            "text generation only.",
            param="model",
        )

    async def check_health(self) -> None:
        import aiohttp

        session = self._client()
        timeout = aiohttp.ClientTimeout(total=_HEALTH_TIMEOUT_S)
        async with session.get(f"{self._url}/health", timeout=timeout) as answer:
            if answer.status != 200:
                raise RuntimeError(f"MLX server health: HTTP {answer.status}")

    async def close(self) -> None:
        """Close the HTTP session (the replica is going away)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_TIMEOUT_S)
            self._session = aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
            )
        return self._session

    async def _generate(self, plan: Plan, *, chat: bool, stream: bool) -> EngineOutput:
        """Start the plan's generations (each answered, or the first refusal raised), then
        read them into one reply or one stream."""
        prefix = "chatcmpl" if chat else "cmpl"
        stamp = Stamp(f"{prefix}-{uuid.uuid4().hex}", int(time.time()), self._model, chat)
        choices = [ChoiceAssembler(i, chat, plan.calls) for i in range(plan.n)]
        exits = AsyncExitStack()
        try:
            # every start ends (answered or refused) before any is closed: none is left behind
            started = await asyncio.gather(
                *(self._start(exits, plan, i) for i in range(plan.n)), return_exceptions=True
            )
            refused = next((r for r in started if isinstance(r, BaseException)), None)
            if refused is not None:
                raise refused
        except BaseException:
            await exits.aclose()
            raise
        replies = list(started)
        if not stream:
            async with exits:
                await asyncio.gather(*(_read_whole(r, c) for r, c in zip(replies, choices)))
            return reply(stamp, plan.prompt_tokens, choices)
        events = _stream(exits, replies, choices, stamp, plan.prompt_tokens)
        return until_end(events, source="The MLX server")

    async def _start(self, exits: AsyncExitStack, plan: Plan, index: int) -> Any:
        import aiohttp

        try:
            answer = await exits.enter_async_context(
                self._client().post(f"{self._url}/v1/generate", json=plan.body_for(index))
            )
        except aiohttp.ClientError as exc:
            raise ModelNotReady(f"The MLX server of '{self._model}' cannot be reached.") from exc
        if answer.status != 200:
            raise await _refusal(answer, plan)
        return answer


async def _lines(answer: Any) -> AsyncIterator[dict[str, Any]]:
    """The generation's NDJSON lines, parsed.

    Raises:
        EngineError: a line is not a JSON object, or longer than aiohttp reads (128 KiB).
    """
    try:
        async for raw in answer.content:
            line = _parsed(raw)
            if line is not None:
                yield line
    except ValueError as exc:  # aiohttp: a line longer than its buffer
        raise EngineError(f"The MLX server sent a line that cannot be read: {exc}.") from None


def _parsed(raw: bytes) -> dict[str, Any] | None:
    """One line, parsed (None for a blank one).

    Raises:
        EngineError: it is not a JSON object.
    """
    if not raw.strip():
        return None
    try:
        line = json.loads(raw)
    except ValueError:
        line = None
    if not isinstance(line, dict):
        raise EngineError("The MLX server sent a line that is not a JSON object.")
    return line


async def _read_whole(answer: Any, choice: ChoiceAssembler) -> None:
    async for line in _lines(answer):
        choice.feed(line)
    if choice.finish_reason is None:
        raise EngineError("The MLX server ended a generation early.")


async def _stream(
    exits: AsyncExitStack,
    answers: list[Any],
    choices: list[ChoiceAssembler],
    stamp: Stamp,
    prompt_tokens: int,
) -> AsyncGenerator[StreamEvent, None]:
    """The choices' deltas as they are generated (interleaved by index, as OpenAI streams
    several choices), then the usage and the end; the generations are closed when it stops."""
    queue: asyncio.Queue[tuple[int, dict[str, Any] | None]] = asyncio.Queue()

    async def pump(index: int) -> None:
        try:
            async for line in _lines(answers[index]):
                await queue.put((index, line))
        finally:
            await queue.put((index, None))

    async with exits:
        tasks = [asyncio.create_task(pump(i)) for i in range(len(answers))]
        try:
            opening = [delta for choice in choices for delta in choice.start()]
            for delta in opening:
                yield _chunk_event(stamp, [delta])
            open_choices = len(answers)
            while open_choices:
                index, line = await queue.get()
                if line is None:
                    open_choices -= 1
                    if choices[index].finish_reason is None:
                        raise EngineError("The MLX server ended a generation early.")
                    continue
                for delta in choices[index].feed(line):
                    yield _chunk_event(stamp, [delta])
            yield _chunk_event(stamp, [], usage=usage(prompt_tokens, choices))
            yield DONE
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _chunk_event(stamp: Stamp, deltas: list[dict[str, Any]], **extra: Any) -> StreamEvent:
    body = chunk(stamp, deltas, **extra)
    return chunk_event(body, json.dumps(body, separators=(",", ":"), ensure_ascii=False))


async def _refusal(answer: Any, plan: Plan) -> APIError:
    """The server's 400 as our error, naming the request's field where the server names one
    of its own: a schema it cannot use came from ``plan.schema_param``."""
    text = await answer.text()
    try:
        body = json.loads(text)
        message, field = str(body.get("error") or text), body.get("field")
    except (ValueError, AttributeError):
        message, field = text, None
    logger.info("MLX server refused a request: HTTP %d %s", answer.status, message[:200])
    if answer.status != 400:
        return EngineError(f"The MLX server failed: HTTP {answer.status} {message[:200]}")
    param = {"json_schema": plan.schema_param}.get(field, field)
    return InvalidRequest(f"The MLX engine refused the request: {message}", param=param)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _as_ids(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return []


def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
