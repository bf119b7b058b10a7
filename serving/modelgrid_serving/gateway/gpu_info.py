"""``GET /v1/gpu/info`` at the gateway: every backend's GPUs, gathered at the time of the call.

Each backend (one per pool endpoint) is asked its own ``/v1/gpu/info`` concurrently, with a short
timeout, so one slow or foreign backend (an OpenAI-compatible server that lacks the route) costs
at most that timeout and shows up under ``backends`` with its error instead of failing the whole
answer. Behind one pool endpoint Serve picks the replica, so each call reports one replica per
pool; the ``node`` field says which.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from .routing import Backend, RoutingTable

PROBE_TIMEOUT_S = 2.0


async def gather_gpu_info(
    session: aiohttp.ClientSession,
    table: RoutingTable,
    allowed: frozenset[str] | None,
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> dict[str, Any]:
    """Ask every ready backend of every model the caller may see; merge the answers.

    Returns:
        ``{"gpus": [...], "backends": [...]}``: ``gpus`` in DeepInfer's shape plus ``model``,
        ``pool`` and ``node``; ``backends`` one line per backend asked, with ``error`` when its
        answer did not come.
    """
    asked = [
        (model, backend)
        for model, route in table.routes.items()
        if route.model == model and (allowed is None or model in allowed)
        for backend in route.backends
    ]
    answers = await asyncio.gather(
        *(_ask(session, backend, timeout_s) for _, backend in asked), return_exceptions=True
    )
    gpus: list[dict[str, Any]] = []
    backends: list[dict[str, Any]] = []
    for (model, backend), answer in zip(asked, answers, strict=True):
        line: dict[str, Any] = {"model": model, "pool": backend.pool}
        if isinstance(answer, BaseException):
            line["error"] = _describe(answer)
        else:
            line["node"] = answer.get("node")
            line["accelerator"] = answer.get("accelerator")
            line["gpus"] = len(answer.get("gpus") or [])
            for gpu in answer.get("gpus") or []:
                gpus.append({**gpu, "model": model, "pool": backend.pool, "node": line["node"]})
        backends.append(line)
    return {"gpus": gpus, "backends": backends}


async def _ask(session: aiohttp.ClientSession, backend: Backend, timeout_s: float) -> Any:
    headers = {"authorization": f"Bearer {backend.api_key}"} if backend.api_key else None
    async with session.get(
        backend.url + "/gpu/info",
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as resp:
        if resp.status != 200:
            raise _BackendAnswered(resp.status)
        answer = await resp.json(content_type=None)
        if not isinstance(answer, dict):
            raise _BackendAnswered(resp.status, "not a JSON object")
        return answer


class _BackendAnswered(Exception):
    def __init__(self, status: int, what: str = "") -> None:
        super().__init__(f"HTTP {status}" + (f": {what}" if what else ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "unreachable"
    return str(exc) or type(exc).__name__
