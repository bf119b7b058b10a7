"""The OpenAI routes of one replica, over any :class:`~modelgrid_serving.engines.base.Engine`.

Routes are thin: read JSON, resolve the served name, validate with :mod:`.protocol`, call the
engine, answer JSON or SSE. Every error goes through :func:`~modelgrid_serving.errors.error_response`.
The same app serves vLLM replicas (in-process engine) and MLX replicas (proxy engine).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import __version__, devices
from .config import AppConfig
from .engines.base import Engine, EngineOutput
from .engines.events import Delta, Done, StreamError, StreamEvent, Usage
from .errors import (
    APIError,
    InvalidJSON,
    MethodNotAllowed,
    ModelNotReady,
    PayloadTooLarge,
    RouteNotFound,
    error_response,
)
from .metrics import CONTENT_TYPE, Metrics, RequestTracker
from .names import ServedNames
from .protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    GPUInfo,
    Health,
    ModelCard,
    ModelList,
    SamplingRequest,
    ServiceInfo,
    ToolCallingInfo,
    chunk_usage,
)
from .sse import DONE_FRAME, data_frame

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=SamplingRequest)


def build_api(
    engine: Engine,
    config: AppConfig,
    *,
    metrics: Metrics,
    created: int,
    tool_calling: ToolCallingInfo | None = None,
    reasoning_parser: str | None = None,
) -> FastAPI:
    """Build the OpenAI-compatible ASGI app of one replica.

    Args:
        engine: The started engine.
        config: The application config (names, aliases).
        metrics: Where this replica counts requests and tokens.
        created: Unix time shown as the models' ``created``.
        tool_calling: The engine's tool-call parser and why, shown on the model card.
        reasoning_parser: The engine's reasoning parser, shown on the model card.

    Returns:
        A FastAPI app with ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``,
        ``/v1/embeddings``, ``/v1/gpu/info``, ``/health``, ``/metrics`` and ``/``.
    """
    names = ServedNames.build([(config.model_name, config.aliases)])
    app = FastAPI(title="modelgrid", version=__version__, docs_url=None, redoc_url=None)
    _install_error_handlers(app)
    _add_service_routes(app, engine, config, names, metrics)
    _add_model_routes(app, engine, names, created, tool_calling, reasoning_parser)
    _add_generation_routes(app, engine, config, names, metrics)
    return app


def _add_service_routes(
    app: FastAPI, engine: Engine, config: AppConfig, names: ServedNames, metrics: Metrics
) -> None:
    """``/``, ``/health``, ``/metrics`` and ``/v1/gpu/info``: what the replica is and how it
    fares, for probes, Prometheus and the gateway's GPU view."""

    @app.get("/", response_model=ServiceInfo)
    async def root() -> ServiceInfo:
        return ServiceInfo(
            version=__version__,
            models=list(names.names()),
            engine=engine.kind,
            engine_version=engine.version,
        )

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        try:
            await engine.check_health()
        except Exception as exc:
            logger.warning("health check failed: %s", exc)
            raise ModelNotReady(f"The engine of '{config.model_name}' is not healthy.") from exc
        return Health()

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/gpu/info", response_model=GPUInfo)
    async def gpu_info() -> GPUInfo:
        gpus = await asyncio.to_thread(devices.probe_gpus)
        accelerator = config.pool.accelerator.value
        return GPUInfo(gpus=gpus, node=devices.node_name(), accelerator=accelerator)


def _add_model_routes(
    app: FastAPI,
    engine: Engine,
    names: ServedNames,
    created: int,
    tool_calling: ToolCallingInfo | None,
    reasoning_parser: str | None,
) -> None:
    """The model listing: the name and each alias, an alias pointing at its ``root``; each card
    says which parsers the engine runs (and why), as an extension."""

    def card(name: str) -> ModelCard:
        root = names.resolve(name)
        return ModelCard(
            id=name,
            created=created,
            root=root if root != name else None,
            max_model_len=engine.max_model_len(),
            tool_calling=tool_calling,
            reasoning_parser=reasoning_parser,
        )

    # Without /v1 too, as several local OpenAI-compatible servers answer: clients given a
    # bare base URL (``http://host:port``) reach the same routes.
    @app.get("/models", response_model=ModelList)
    @app.get("/v1/models", response_model=ModelList)
    async def list_models() -> ModelList:
        return ModelList(data=[card(name) for name in names.names()])

    @app.get("/models/{model:path}", response_model=ModelCard)
    @app.get("/v1/models/{model:path}", response_model=ModelCard)
    async def get_model(model: str) -> ModelCard:
        return card(model)


def _add_generation_routes(
    app: FastAPI, engine: Engine, config: AppConfig, names: ServedNames, metrics: Metrics
) -> None:
    """Chat, completions and embeddings: each request read within the body bound, its name
    resolved, validated, counted in the metrics whatever its outcome, and passed to the engine."""
    limit = config.max_body_bytes

    @app.post("/chat/completions")
    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await _read_json(request, limit)
        return await _generate(body, "chat", ChatCompletionRequest, engine.chat, names, metrics)

    @app.post("/completions")
    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await _read_json(request, limit)
        return await _generate(
            body, "completions", CompletionRequest, engine.completions, names, metrics
        )

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = await _read_json(request, limit)
        body["model"] = canonical = names.resolve(body.get("model"))
        tracker = metrics.track(canonical, "embeddings")
        with _counting_failure(tracker):
            output = await engine.embeddings(EmbeddingRequest.model_validate(body))
        _count_usage(tracker, output)
        tracker.done(200)
        return JSONResponse(drop_nulls(output))


async def _generate(
    body: dict[str, Any],
    route: str,
    schema: type[RequestT],
    call: Callable[[RequestT], Awaitable[EngineOutput]],
    names: ServedNames,
    metrics: Metrics,
) -> Response:
    """A completion or chat completion: validated, generated, answered whole or streamed.

    The engine gets the parsed request under the canonical name, asking for usage if it streams
    (every stream's tokens are counted; the usage chunk is dropped for a client that did not ask
    for it); the answer carries the name the client used, as OpenAI's does for an alias.
    """
    requested = body.get("model")
    body["model"] = canonical = names.resolve(requested)
    tracker = metrics.track(canonical, route)  # refusals of a known model count too
    with _counting_failure(tracker, Exception):
        parsed = schema.model_validate(body)
    client_wants_usage = parsed.wants_usage_in_stream()
    with _counting_failure(tracker):
        output = await call(parsed.with_usage_in_stream())
    if isinstance(output, dict):
        _count_usage(tracker, output)
        tracker.done(200)
        if requested != canonical:  # answer with the name the client used, as OpenAI does
            output["model"] = requested
        return JSONResponse(to_openai_shape(output))
    rename = None
    if requested != canonical:
        rename = (f'"model":{json.dumps(canonical)}', f'"model":{json.dumps(requested)}')
    return StreamingResponse(
        _relay(output, tracker, keep_usage=client_wants_usage, rename=rename),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@contextmanager
def _counting_failure(
    tracker: RequestTracker, catch: type[BaseException] = BaseException
) -> Iterator[None]:
    """Count a request that fails here under the status its error answers with (a cancelled
    request too), then let the error go on to the handlers that answer it."""
    try:
        yield
    except catch as exc:
        tracker.done(error_response(exc).status_code)
        raise


def to_openai_shape(body: dict[str, Any]) -> dict[str, Any]:
    """An engine's full response as OpenAI's schema has it: unset extensions dropped, and
    ``logprobs.refusal`` (required, null when no refusal) present."""
    body = drop_nulls(body)
    for choice in body.get("choices") or ():
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and "content" in logprobs:
            logprobs.setdefault("refusal", None)
    return body


KEEP_NULL = frozenset({"content", "refusal", "logprobs", "finish_reason"})
"""Keys OpenAI requires even when null; every other null is an engine's unset extension."""


def drop_nulls(value: Any) -> Any:
    """Remove ``null`` members that OpenAI's schemas do not allow (engines add many: vLLM's
    ``annotations``, ``token_ids``, ``prompt_tokens_details``...). Strict clients validate."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None or k in KEEP_NULL}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def _install_error_handlers(app: FastAPI) -> None:
    def reply(exc: BaseException) -> JSONResponse:
        answer = error_response(exc)
        return JSONResponse(
            answer.content(), status_code=answer.status_code, headers=answer.headers
        )

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        return reply(exc)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            return reply(
                MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
            )
        if exc.status_code == 404:
            return reply(RouteNotFound(f"No route {request.method} {request.url.path}."))
        return reply(APIError(str(exc.detail)))

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error", exc_info=exc)
        return reply(exc)

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(ValidationError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 once it is over ``limit`` bytes: by its declared length
    before a byte is read, else as soon as the chunks read pass it (chunked uploads)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    raw = await _read_body(request, limit)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidJSON(f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidJSON("The body must be a JSON object.")
    return body


def _count_usage(tracker: RequestTracker, body: dict[str, Any]) -> None:
    usage = chunk_usage(body)
    if usage is not None:
        tracker.usage(*usage)


async def _relay(
    events: AsyncIterator[StreamEvent],
    tracker: RequestTracker,
    *,
    keep_usage: bool,
    rename: tuple[str, str] | None = None,
) -> AsyncIterator[str]:
    """Write the engine's events as SSE: time tokens as the engine makes them, count the usage
    (its chunk kept only if the client asked), echo the model name the client used, end with
    ``[DONE]`` (after an error body if the engine failed), and coalesce.

    A pump task reads the engine while the previous write is in flight; each write sends every
    frame that arrived meanwhile. Idle, a frame goes out alone and at once (no added latency);
    under load, one write carries several frames, so the Serve proxy moves fewer messages.
    """
    pending: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                match event:
                    case Delta(chunk=chunk):
                        tracker.token()
                    case Usage(prompt_tokens=prompt, completion_tokens=completion, chunk=chunk):
                        tracker.usage(prompt, completion)
                        if not keep_usage:
                            continue
                    case StreamError(error=error):
                        raise error
                    case Done():
                        break
                if rename:  # the alias the client used, not the canonical name
                    chunk = chunk.replace(*rename, 1)
                pending.put_nowait(data_frame(chunk))
            pending.put_nowait(None)
        except Exception as exc:  # noqa: BLE001 - handed to the writer, which tells the client
            pending.put_nowait(exc)

    task = asyncio.create_task(pump())
    status = 200
    try:
        while True:
            batch = [await pending.get()]
            while not pending.empty():
                batch.append(pending.get_nowait())
            frames_out = [item for item in batch if isinstance(item, str)]
            end = next((item for item in batch if not isinstance(item, str)), False)
            if isinstance(end, BaseException):  # the engine broke mid-stream
                logger.error("stream failed", exc_info=end)
                status = 500
                frames_out.append(data_frame(json.dumps(error_response(end).content())))
            if end is not False:
                frames_out.append(DONE_FRAME)
            if frames_out:
                yield "".join(frames_out)
            if end is not False:
                return
    finally:
        task.cancel()
        tracker.done(status)
