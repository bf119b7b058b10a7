"""A backend that answers 503 (its engine is gone) is ejected and the request goes elsewhere,
so a pool that lost its engine never answers for the model while another pool can."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from local_backend import CHAT_PATH, chat_backend, served
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.config import GatewayConfig
from modelgrid_serving.gateway.state import GatewayState
from unit.gateway.test_gateway_asgi import call

pytestmark = pytest.mark.integration

CHAT = json.dumps({"model": "llama", "messages": [{"role": "user", "content": "hi"}]}).encode()
GONE = {"error": {"message": "engine gone", "type": "x", "param": None, "code": "model_not_ready"}}


def _backend(status: int, hits: list[str], name: str) -> web.Application:
    async def answer(_: web.Request) -> web.Response:
        hits.append(name)
        body: dict[str, Any] = GONE if status == 503 else {"id": name, "object": "chat.completion"}
        return web.json_response(body, status=status)

    return chat_backend(answer)


@pytest.fixture()
async def pools() -> AsyncIterator[tuple[list[str], list[str]]]:
    """A gateway over two pools: ``gone`` answers 503, ``ok`` answers 200."""
    hits: list[str] = []
    async with (
        served(_backend(503, hits, "gone")) as gone,
        served(_backend(200, hits, "ok")) as ok,
    ):
        yield hits, [f"{gone}/v1", f"{ok}/v1"]


def _gateway(urls: list[str], pools: tuple[str, ...] = ("gone", "ok")) -> Gateway:
    backends = [{"url": u, "pool": p} for u, p in zip(urls, pools, strict=False)]
    config = {
        "models": [{"name": "llama", "backends": backends}],
        "limits": {"health_interval_s": 0},
    }
    return Gateway(GatewayState(GatewayConfig.model_validate(config)))


async def test_unavailable_backend_503_is_retried_on_another_and_ejected(pools) -> None:
    hits, urls = pools
    app = _gateway(urls)
    await app.state.startup()
    try:
        statuses = [(await call(app, "POST", CHAT_PATH, CHAT, stay=True))[0] for _ in range(10)]
    finally:
        await app.state.shutdown()
    assert statuses == [200] * 10
    assert hits.count("ok") == 10
    assert hits.count("gone") == 1  # tried once, then ejected (1 s, doubling)


async def test_unavailable_only_backend_relays_its_503(pools) -> None:
    hits, urls = pools
    app = _gateway(urls[:1])
    await app.state.startup()
    try:
        status, _, body = await call(app, "POST", CHAT_PATH, CHAT, stay=True)
    finally:
        await app.state.shutdown()
    assert status == 503 and json.loads(body)["error"]["code"] == "model_not_ready"
    assert hits == ["gone"]
