"""The Serve deployment of an MLX pool: the same OpenAI routes over the MLX engine.

A replica answers HTTP itself (Serve's late-bound ingress hook, as the vLLM replica does) and
talks to the pool's MLX server sidecar. It imports neither Ray Serve LLM nor vLLM (importing
them costs seconds and gigabytes that an Apple node's replica has no use for), which is why it
is not in :mod:`.server`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ray import serve

from .api import build_api
from .config import AppConfig
from .engines.mlx import MLXEngine
from .metrics import Metrics

logger = logging.getLogger(__name__)

_READY_DEADLINE_S = 300.0
"""How long a new replica waits for its sidecar (which may still be loading the model)."""


@serve.ingress()
class MLXServer:
    """One replica: the OpenAI routes, metrics, and the MLX server beside it."""

    async def __init__(self, *, app_config: dict[str, Any]) -> None:
        self._app_config = AppConfig.model_validate(app_config)
        # One pool per application (app.py): its name labels every sample of this replica.
        self._metrics = Metrics(pool=self._app_config.pool.name)
        self._created = int(time.time())
        self._engine = MLXEngine(self._app_config)
        await self._wait_for_sidecar()
        port = self._app_config.metrics_port
        if port:
            from prometheus_client import start_http_server

            start_http_server(port, registry=self._metrics.registry)
            logger.info("metrics on :%d/metrics", port)

    async def _wait_for_sidecar(self) -> None:
        """Ready only once the MLX server answers: Serve routes nothing here before that."""
        end = time.monotonic() + _READY_DEADLINE_S
        while True:
            try:
                await self._engine.check_health()
                return
            except Exception as exc:  # not up yet: poll until the deadline
                if time.monotonic() > end:
                    raise RuntimeError(
                        f"the MLX server of {self._app_config.model_name} did not become "
                        f"healthy within {_READY_DEADLINE_S:.0f} s: {exc}"
                    ) from exc
                await asyncio.sleep(0.5)

    async def __serve_build_asgi_app__(self) -> Any:
        return build_api(
            self._engine, self._app_config, metrics=self._metrics, created=self._created
        )

    async def check_health(self) -> None:
        """Serve's health probe: the replica is healthy while its MLX server is."""
        await self._engine.check_health()

    async def __del__(self) -> None:
        await self._engine.close()
        # Serve's ingress wrapper, next in the MRO, shuts the ASGI app's lifespan down.
        parent = getattr(super(), "__del__", None)
        if parent is not None:
            await parent()
