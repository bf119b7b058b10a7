"""vLLM through Ray Serve LLM: our :class:`~modelgrid_serving.engines.base.Engine` over Ray's engine.

Ray Serve LLM (``ray.serve.llm``) owns starting vLLM (CPU or CUDA build, the same code path),
placement and health. This module translates: AppConfig -> ``LLMConfig``, our parsed requests ->
Ray's request models (what the client sent, extensions included: vLLM understands many), and
Ray's outputs -> our contract: whole bodies, stream events, our error classes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncGenerator, MutableMapping
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Accelerator, AppConfig
from ..errors import APIError, EngineError, InvalidRequest, from_validation_error
from ..protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, OpenAIBaseModel
from ..sse import DONE as DONE_DATA
from ..sse import event_data
from ..tool_parsers import ParserChoice
from .base import EngineOutput
from .events import DONE, StreamEvent, error_from_body, parse_chunk, until_end

if TYPE_CHECKING:
    from ray.serve.llm import LLMConfig

_ENGINE_ENV_DEFAULTS = {"VLLM_NO_USAGE_STATS": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
"""vLLM's CPU build reserves 4 GiB of KV cache by default; 1 GiB holds 500k tokens of a small
model. Override through the process environment or ``engine_kwargs``."""


def to_llm_config(config: AppConfig) -> LLMConfig:
    """Ray Serve LLM's config for one pool's vLLM replicas.

    Args:
        config: The application config of the pool.

    Returns:
        An ``LLMConfig`` whose ``model_id`` is the canonical served name.
    """
    from ray.serve.llm import LLMConfig

    engine_kwargs: dict[str, Any] = {
        "dtype": config.dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "pipeline_parallel_size": config.pipeline_parallel_size,
    }
    if config.revision:
        engine_kwargs["revision"] = config.revision
    if config.max_model_len:
        engine_kwargs["max_model_len"] = config.max_model_len
    if config.pool.accelerator == Accelerator.NVIDIA:
        engine_kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
    if config.reasoning_parser:
        engine_kwargs["reasoning_parser"] = config.reasoning_parser
    if config.chat_template:
        engine_kwargs["chat_template"] = config.chat_template  # vLLM reads a path or the text
    engine_kwargs.update(config.engine_kwargs)

    accelerator: dict[str, Any] = {"kind": "cpu"}
    env = dict(_ENGINE_ENV_DEFAULTS)
    if config.pool.accelerator == Accelerator.NVIDIA:
        accelerator = {"kind": "gpu"}
        env.pop("VLLM_CPU_KVCACHE_SPACE")
    return LLMConfig(
        model_loading_config={"model_id": config.model_name, "model_source": config.model_source},
        accelerator_config=accelerator,
        engine_kwargs=engine_kwargs,
        runtime_env={"env_vars": env},
        log_engine_metrics=False,
    )


def tool_calling_kwargs(choice: ParserChoice) -> dict[str, Any]:
    """vLLM's arguments for a tool-call parser choice: automatic tool choice with that parser,
    or nothing (vLLM then refuses every ``tool_choice`` but ``none``: even a named or
    ``required`` one, which it constrains by guided decoding, needs the parser).

    The choice is made in the replica (``auto`` reads the model's files there), so these are
    added to the ``LLMConfig`` there too, before the engine starts.
    """
    if choice.parser is None:
        return {}
    return {"enable_auto_tool_choice": True, "tool_call_parser": choice.parser}


def run_model_in_engine_process(
    vllm_config: Any, environ: MutableMapping[str, str], cpus: int
) -> int | None:
    """Make a one-process CPU engine run its model in vLLM's engine process, with ``cpus - 1``
    OpenMP threads; returns that thread count, or None when the config was left alone.

    For CPU replicas Ray Serve LLM forces vLLM's multiprocessing executor, which for a world size
    of one adds a second process, the model worker, fed over a shared-memory ring whose readers
    (the worker, and the engine process waiting for its results) spin for up to a second between
    steps. Those spinning processes take the cores the replica needs to turn tokens into HTTP
    chunks: measured on two cores, streams stalled and arrived whole at the end. In one process
    nothing spins. vLLM sets the worker's OpenMP threads when it starts a worker process, so here
    ``environ`` (inherited by the engine process, which vLLM spawns in a Ray actor) gets them:
    every CPU but one, which the replica keeps for HTTP and detokenizing.
    GPU replicas (Ray's executor, the worker holding the GPU) and parallel engines are unchanged.
    """
    parallel = vllm_config.parallel_config
    if parallel.distributed_executor_backend != "mp" or parallel.world_size != 1:
        return None
    parallel.distributed_executor_backend = "uni"
    threads = max(1, cpus - 1)
    environ["OMP_NUM_THREADS"] = str(threads)
    return threads


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container's CPU limit, which affinity does not show)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cpus


class VLLMEngine:
    """Adapts Ray Serve LLM's vLLM engine (``LLMServer.engine``) to our engine contract."""

    kind = "vllm"

    def __init__(self, ray_engine: Any, *, max_model_len: int | None = None) -> None:
        from ray.serve.llm import openai_api_models as oai

        self._engine = ray_engine
        self._oai = oai
        self._max_model_len = max_model_len
        self.version = _installed_version("vllm-cpu", "vllm")

    def max_model_len(self) -> int | None:
        if self._max_model_len is None:
            client = getattr(self._engine, "_engine_client", None)
            model_config = getattr(client, "model_config", None)
            self._max_model_len = getattr(model_config, "max_model_len", None)
        return self._max_model_len

    async def chat(self, request: ChatCompletionRequest) -> EngineOutput:
        ray_request = self._parse(self._oai.ChatCompletionRequest, request)
        return await self._generate(self._engine.chat(ray_request, None), request)

    async def completions(self, request: CompletionRequest) -> EngineOutput:
        ray_request = self._parse(self._oai.CompletionRequest, request)
        return await self._generate(self._engine.completions(ray_request, None), request)

    async def embeddings(self, request: EmbeddingRequest) -> dict[str, Any]:
        ray_request = self._parse(self._oai.EmbeddingRequest, request)
        first = await anext(self._engine.embeddings(ray_request, None))
        self._raise_if_error(first, request)
        return first.model_dump()

    async def check_health(self) -> None:
        await self._engine.check_health()

    @staticmethod
    def _parse(model: Any, request: OpenAIBaseModel) -> Any:
        """Ray's request model of ``request``: the fields the client set (defaults left to
        vLLM's own) and the extensions it sent."""
        from pydantic import ValidationError
        from vllm.exceptions import VLLMClientError

        try:
            return _adapter(model).validate_python(request.model_dump(exclude_unset=True))
        except ValidationError as exc:
            # Our protocol validated first; what vLLM's models still refuse is a client error too.
            raise from_validation_error(exc) from None
        except VLLMClientError as exc:
            # vLLM's request validators raise this, which pydantic does not wrap: unmapped, a
            # client mistake would leave as a 500.
            message = str(exc.args[0]) if exc.args else str(exc)
            raise InvalidRequest(message, param=getattr(exc, "parameter", None)) from None

    async def _generate(
        self, outputs: AsyncGenerator[Any, None], request: OpenAIBaseModel
    ) -> EngineOutput:
        try:
            first = await anext(outputs)
        except StopAsyncIteration:
            raise EngineError("The engine returned no output.") from None
        if isinstance(first, str):
            return until_end(_events(first, outputs), source="The vLLM engine")
        self._raise_if_error(first, request)
        return first.model_dump()

    @staticmethod
    def _raise_if_error(output: Any, request: OpenAIBaseModel) -> None:
        # Ray yields its internal ErrorResponse (a vLLM subclass), not the public re-export:
        # match by name along the MRO rather than by one of the classes.
        if any(cls.__name__ == "ErrorResponse" for cls in type(output).__mro__):
            raise _to_api_error(output, request)


def _installed_version(*distributions: str) -> str | None:
    """The version of the first installed distribution (vLLM's CPU build is "vllm-cpu")."""
    from importlib.metadata import PackageNotFoundError, version

    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


@functools.cache
def _adapter(model: Any) -> Any:
    """A cached pydantic adapter: some of Ray's request types are unions (EmbeddingRequest)."""
    from pydantic import TypeAdapter

    return TypeAdapter(model)


def _to_api_error(response: Any, request: OpenAIBaseModel) -> APIError:
    error = response.error.model_dump()
    code = error.get("code")
    if error.get("param") is None and isinstance(code, int) and 400 <= code < 500:
        error["param"] = refused_param(
            str(error.get("message") or ""), request.model_dump(exclude_unset=True)
        )
    return error_from_body(error)


_CONSTRAINTS = ("response_format", "guided_json", "guided_regex", "guided_grammar",
                "guided_choice", "structured_outputs", "tools")  # fmt: skip
"""Request fields that make vLLM compile a grammar, in the order a grammar error blames them."""


def refused_param(message: str, body: dict[str, Any]) -> str | None:
    """The field a 400 of vLLM's is about, where vLLM names none: its tool-choice refusals
    (no parser configured), grammar errors (a schema it cannot compile: the constraint the
    request carries) and content refusals (parts a text-only model cannot take).

    Args:
        message: vLLM's error message.
        body: The request, to see which constraint it carries.

    Returns:
        The field, or None when the message is none of those.
    """
    lowered = message.lower()
    if "tool choice" in lowered or "tool_choice" in lowered or "tool-call-parser" in lowered:
        return "tool_choice"
    if "grammar" in lowered or "json schema" in lowered or "structured output" in lowered:
        return next((field for field in _CONSTRAINTS if body.get(field) is not None), None)
    if "multimodal" in lowered or "content part" in lowered:
        return "messages"
    return None


async def _events(first: str, rest: AsyncGenerator[str, None]) -> AsyncGenerator[StreamEvent, None]:
    """vLLM's SSE frames (one event each, ``data: {chunk}``) as our events. vLLM reports a
    failure mid-stream as an error chunk, then ``[DONE]``: :func:`until_end` ends at the error."""
    async with aclosing(rest):
        frame: str | None = first
        while frame is not None:
            data = event_data(frame)
            if data is not None:
                yield DONE if data == DONE_DATA else parse_chunk(data)
            frame = await anext(rest, None)
