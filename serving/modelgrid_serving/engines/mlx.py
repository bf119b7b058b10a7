"""MLX through its own server: our :class:`~modelgrid_serving.engines.base.Engine` over HTTP.

An Apple pool's replica does not run MLX itself: mlx-lm's server (``mlx_lm.server``) runs beside
it as a sidecar (in a pod on an Apple node; a child process of ``modelgrid up``), and this engine
talks to it at ``PoolConfig.mlx_server_url``. Why a sidecar and not MLX in the replica: see
docs/serving.md ("The MLX engine").

The replica keeps what the MLX server does not do: names and aliases, validation and the
context-length check (with the model's own tokenizer), the parameters MLX cannot honour refused
by name (:mod:`.mlx_translation`), OpenAI-shaped replies and errors, metrics.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from ..config import AppConfig
from ..errors import (
    APIError,
    EngineError,
    InvalidRequest,
    ModelNotReady,
    UnsupportedForModel,
    from_engine_error,
)
from ..protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from ..sse import EventTooLarge, read_data
from .base import EngineOutput
from .events import StreamEvent, until_end
from .mlx_translation import (
    PromptCounter,
    Stamp,
    Target,
    normalise_response,
    stream_event,
    to_mlx_chat,
    to_mlx_completion,
)

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0
_HEALTH_TIMEOUT_S = 5.0
_DEFAULT_MAX_MODEL_LEN = 4096
"""When neither the config nor the model's config.json says: a conservative context."""


class TokenizerCounter:
    """Counts prompt tokens with the model's tokenizer and chat template (as mlx-lm does)."""

    def __init__(self, model_dir: str) -> None:
        from transformers import AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"the MLX replica needs the model's tokenizer at {model_dir} (the same path as "
                f"its MLX server; it counts prompt tokens against the context): {exc}"
            ) from exc
        ids = {self._tokenizer.eos_token_id}
        for name in ("config.json", "generation_config.json"):
            ids.update(_as_ids(_read_json(Path(model_dir) / name).get("eos_token_id")))
        self.eos_token_ids = frozenset(i for i in ids if isinstance(i, int))

    def count_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        try:
            text = self._tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # noqa: BLE001 - the template refuses these messages
            raise InvalidRequest(
                f"The chat template rejected the messages: {exc}", param="messages"
            ) from None
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def count_text(self, prompt: str) -> int:
        return len(self._tokenizer.encode(prompt))


def model_max_len(config: AppConfig) -> int:
    """The context length: the config's, else the model's ``max_position_embeddings``."""
    if config.max_model_len:
        return config.max_model_len
    found = _read_json(Path(config.model_source) / "config.json").get("max_position_embeddings")
    return int(found) if isinstance(found, int) else _DEFAULT_MAX_MODEL_LEN


class MLXEngine:
    """Talks to one mlx-lm server; one instance per replica, used from the replica's event loop."""

    kind = "mlx"

    def __init__(self, config: AppConfig, *, counter: PromptCounter | None = None) -> None:
        pool = config.pool
        if not pool.mlx_server_url:
            raise ValueError(f"pool {pool.name}: an MLX pool needs mlx_server_url")
        self._url = pool.mlx_server_url.rstrip("/")
        self._model = config.model_name
        self._target = Target(
            mlx_model=config.model_source,
            max_model_len=model_max_len(config),
            counter=counter or TokenizerCounter(config.model_source),
        )
        self.version = _installed_version("mlx-lm")
        self._session: Any = None

    def max_model_len(self) -> int | None:
        return self._target.max_model_len

    async def chat(self, request: ChatCompletionRequest) -> EngineOutput:
        mlx_request = to_mlx_chat(request, self._target)
        return await self._generate("/v1/chat/completions", mlx_request, chat=True)

    async def completions(self, request: CompletionRequest) -> EngineOutput:
        mlx_request = to_mlx_completion(request, self._target)
        return await self._generate("/v1/completions", mlx_request, chat=False)

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
        async with session.get(f"{self._url}/health", timeout=timeout) as reply:
            if reply.status != 200:
                raise RuntimeError(f"MLX server health: HTTP {reply.status}")

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

    async def _generate(self, path: str, request: dict[str, Any], *, chat: bool) -> EngineOutput:
        import aiohttp

        prefix = "chatcmpl" if chat else "cmpl"
        stamp = Stamp(f"{prefix}-{uuid.uuid4().hex}", int(time.time()), self._model, chat)
        try:
            reply = await self._client().post(f"{self._url}{path}", json=request)
        except aiohttp.ClientError as exc:
            raise ModelNotReady(f"The MLX server of '{self._model}' cannot be reached.") from exc
        if reply.status != 200:
            try:
                raise await _reply_error(reply)
            finally:
                reply.release()
        if not request["stream"]:
            async with reply:
                return normalise_response(await reply.json(content_type=None), stamp)
        return until_end(_events(reply, stamp), source="The MLX server")


async def _events(reply: Any, stamp: Stamp) -> AsyncGenerator[StreamEvent, None]:
    """The MLX server's SSE stream as our events (its keep-alive comments dropped)."""
    try:
        async for data in read_data(reply.content.iter_any()):
            yield stream_event(data, stamp)
    except EventTooLarge as exc:
        raise EngineError(f"The MLX server's stream cannot be read: {exc}.") from None
    finally:
        reply.release()


async def _reply_error(reply: Any) -> APIError:
    """The MLX server answers errors as ``{"error": "text"}`` with 400 (bad parameter) or 404
    (generation refused: the chat template raised, or the generation thread died)."""
    text = await reply.text()
    try:
        message = str(json.loads(text).get("error") or text)
    except (json.JSONDecodeError, AttributeError):
        message = text
    if "generation thread died" in message:
        return EngineError("The MLX server's generation thread has died.")
    status = 400 if reply.status == 404 else reply.status
    logger.info("MLX server refused a request: HTTP %d %s", reply.status, message[:200])
    return from_engine_error(f"The MLX engine refused the request: {message}", status_code=status)


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
