"""The Serve deployment of a vLLM pool: Ray Serve LLM's ``LLMServer`` answering HTTP itself.

``LLMServer`` starts vLLM and keeps it healthy; we give it our ASGI app (:mod:`.api`) through
Serve's late-bound ingress hook, so one replica both runs the engine and answers the OpenAI
routes. A request crosses the Serve proxy and lands in the process that runs the engine: no
second deployment hop, which is what keeps the overhead over bare vLLM small.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ray import serve
from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine as RayVLLMEngine
from ray.serve.llm import LLMConfig, LLMServer

from .api import build_api
from .config import AppConfig
from .engines.vllm import (
    VLLMEngine,
    run_model_in_engine_process,
    tool_calling_kwargs,
    usable_cpus,
)
from .metrics import VLLM_STATS, Metrics
from .protocol import ToolCallingInfo
from .tool_parsers import choose_tool_parser, read_model_files

logger = logging.getLogger(__name__)


class OneProcessCPUEngine(RayVLLMEngine):
    """Ray Serve LLM's vLLM engine, with the model in the engine process on CPU (see
    :func:`~.engines.vllm.run_model_in_engine_process`) unless the pool's ``engine_kwargs`` name
    a ``distributed_executor_backend`` (``mp``: vLLM's worker process and its core binding)."""

    def _start_async_llm_engine(
        self, vllm_engine_args: Any, vllm_engine_config: Any, placement_group: Any
    ) -> Any:
        threads = None
        if "distributed_executor_backend" not in self.llm_config.engine_kwargs:  # the user's say
            threads = run_model_in_engine_process(vllm_engine_config, os.environ, usable_cpus())
        if threads is not None:
            logger.info("CPU engine: the model runs in the engine process, %d threads", threads)
        return super()._start_async_llm_engine(
            vllm_engine_args, vllm_engine_config, placement_group
        )


def add_frontend_kwargs(llm_config: LLMConfig, kwargs: dict[str, Any]) -> None:
    """Add vLLM frontend arguments (the OpenAI layer's: tool-call parser...) to a config that
    was built elsewhere. Building the application already computed and cached the engine
    config (its ``frontend_kwargs`` split from ``engine_kwargs``), and the replica gets that
    cache: both must change, or vLLM starts without them."""
    llm_config.engine_kwargs.update(kwargs)
    llm_config.get_engine_config().frontend_kwargs.update(kwargs)


@serve.ingress()
class VLLMServer(LLMServer):
    """One replica: vLLM through Ray Serve LLM, the OpenAI routes, metrics."""

    _default_engine_cls = OneProcessCPUEngine

    async def __init__(self, llm_config: LLMConfig, *, app_config: dict[str, Any]) -> None:
        self._app_config = AppConfig.model_validate(app_config)
        # One pool per application (app.py): its name labels every sample of this replica.
        self._metrics = Metrics(pool=self._app_config.pool.name)
        self._metrics.watch_engine(VLLM_STATS, model=self._app_config.model_name)
        self._created = int(time.time())
        config = self._app_config
        choice = choose_tool_parser(
            config.tool_call_parser,
            lambda: read_model_files(
                config.model_source, revision=config.revision, chat_template=config.chat_template
            ),
        )
        logger.info("tool calling: %s (%s)", choice.parser or "off", choice.reason)
        self._tool_calling = ToolCallingInfo(parser=choice.parser, reason=choice.reason)
        add_frontend_kwargs(llm_config, tool_calling_kwargs(choice))  # before the engine starts
        await super().__init__(llm_config)
        port = self._app_config.metrics_port
        if port:
            from prometheus_client import start_http_server

            start_http_server(port, registry=self._metrics.registry)
            logger.info("metrics on :%d/metrics", port)

    async def __serve_build_asgi_app__(self) -> Any:
        engine = VLLMEngine(self.engine, max_model_len=self._app_config.max_model_len)
        return build_api(
            engine,
            self._app_config,
            metrics=self._metrics,
            created=self._created,
            tool_calling=self._tool_calling,
            reasoning_parser=self._app_config.reasoning_parser,
        )
