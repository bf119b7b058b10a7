"""The gateway's ``/v1/gpu/info`` asks every ready backend and merges the answers.

The backends are tiny local aiohttp servers that answer like replicas (or fail like foreign
servers); no engine is involved.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import aiohttp
import pytest
from aiohttp import web
from local_backend import served
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.config import GatewayConfig
from modelgrid_serving.gateway.gpu_info import gather_gpu_info
from modelgrid_serving.gateway.routing import Backend, ModelEntry, build_table
from modelgrid_serving.gateway.state import GatewayState
from unit.gateway.test_gateway_asgi import call

pytestmark = pytest.mark.integration

H100 = {"id": 0, "name": "NVIDIA H100", "vendor": "nvidia", "total_memory_gb": 80.0}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], str]]:
    """Start aiohttp apps on free local ports; yields ``start(app) -> base URL``."""
    async with AsyncExitStack() as started:

        async def start(app: web.Application) -> str:
            return f"{await started.enter_async_context(served(app))}/v1"

        yield start  # type: ignore[misc]


def replica(node: str, gpus: list[dict], *, key: str | None = None) -> web.Application:
    async def gpu_info(request: web.Request) -> web.Response:
        if key and request.headers.get("authorization") != f"Bearer {key}":
            return web.json_response({"error": {"message": "no"}}, status=401)
        return web.json_response({"gpus": gpus, "node": node, "accelerator": "nvidia"})

    app = web.Application()
    app.router.add_get("/v1/gpu/info", gpu_info)
    return app


async def test_answers_are_merged_and_failures_named(serve) -> None:
    a = await serve(replica("node-a", [H100, {**H100, "id": 1}]))
    b = await serve(replica("node-b", [], key="sk-upstream"))
    foreign = await serve(web.Application())  # an OpenAI-compatible server without the route
    entries = [
        ModelEntry(
            name="llama",
            aliases=("chat",),
            backends=(
                Backend(url=a, pool="gpu"),
                Backend(url=b, pool="cpu", api_key="sk-upstream"),
            ),
        ),
        ModelEntry(name="other", backends=(Backend(url=foreign, pool="ext"),)),
        ModelEntry(name="gone", backends=(Backend(url="http://127.0.0.1:9/v1", pool="x"),)),
        ModelEntry(name="loading", backends=(Backend(url=a, pool="gpu", ready=False),)),
    ]
    table = build_table(entries)
    async with aiohttp.ClientSession() as session:
        merged = await gather_gpu_info(session, table, None)
        only_llama = await gather_gpu_info(session, table, frozenset({"llama"}))

    assert [(g["model"], g["pool"], g["node"], g["id"]) for g in merged["gpus"]] == [
        ("llama", "gpu", "node-a", 0),
        ("llama", "gpu", "node-a", 1),
    ]
    lines = {(line["model"], line["pool"]): line for line in merged["backends"]}
    assert set(lines) == {("llama", "gpu"), ("llama", "cpu"), ("other", "ext"), ("gone", "x")}
    assert lines["llama", "gpu"]["gpus"] == 2
    assert lines["llama", "cpu"] == {
        "model": "llama",
        "pool": "cpu",
        "node": "node-b",
        "accelerator": "nvidia",
        "gpus": 0,
    }
    assert lines["other", "ext"]["error"] == "HTTP 404"
    assert lines["gone", "x"]["error"] == "unreachable"
    assert {line["model"] for line in only_llama["backends"]} == {"llama"}


async def test_route_respects_keys_and_allowlists(serve) -> None:
    a = await serve(replica("node-a", [H100]))
    config = GatewayConfig.model_validate(
        {
            "models": [
                {"name": "llama", "backends": [{"url": a}]},
                {"name": "other", "backends": [{"url": a}]},
            ],
            "auth": {
                "enabled": True,
                "keys": [{"name": "team", "sha256": hash_key("sk-team-0001"), "models": ["other"]}],
            },
        }
    )
    state = GatewayState(config)
    await state.startup()
    try:
        app = Gateway(state)
        status, _, body = await call(app, "GET", "/v1/gpu/info")
        assert status == 401
        assert json.loads(body)["error"]["code"] == "invalid_api_key"
        status, _, body = await call(
            app, "GET", "/v1/gpu/info", headers={"authorization": "Bearer sk-team-0001"}
        )
        assert status == 200
        answer = json.loads(body)
        assert [(g["model"], g["node"]) for g in answer["gpus"]] == [("other", "node-a")]
    finally:
        await state.shutdown()
