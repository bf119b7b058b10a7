"""The gateway application in-process against peers and backends on local ports: an error that
is not OpenAI-shaped is reshaped, a proxied stream feeds the live figures, and two gateways share
one allowance over their real ``/internal/usage``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from local_backend import CHAT_PATH, chat_backend, served
from modelgrid_serving.errors import RateLimited
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.config import GatewayConfig
from modelgrid_serving.gateway.peers import PEER_SECRET_ENV, USAGE_PATH
from modelgrid_serving.gateway.state import GatewayState
from polling import eventually
from unit.gateway.test_gateway_asgi import call, make_gateway
from unit.gateway.test_gateway_console import make_state
from unit.gateway.test_gateway_peers import POLICY

pytestmark = pytest.mark.integration


async def test_backend_error_that_is_not_openai_shaped_is_reshaped() -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500, text="engine exploded", content_type="text/plain")

    async with served(chat_backend(broken)) as url:
        app = make_gateway(
            models=[{"name": "llama", "backends": [{"url": f"{url}/v1"}]}],
            limits={"health_interval_s": 0},
        )
        await app.state.startup()
        try:
            body = json.dumps({"model": "llama", "messages": [{"role": "user", "content": "hi"}]})
            status, headers, out = await call(app, "POST", CHAT_PATH, body.encode(), stay=True)
        finally:
            await app.state.shutdown()
    assert status == 500
    assert headers["content-type"].startswith("application/json")
    assert "engine exploded" in json.loads(out)["error"]["message"]


async def test_proxied_stream_feeds_the_live_figures() -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for word in ("a", "b"):
            chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await asyncio.sleep(0.02)  # a backend that streams: its deltas come apart
        usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
        await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        return resp

    body = json.dumps({"model": "llama", "stream": True, "messages": []}).encode()
    scope = {"type": "http", "method": "POST", "path": CHAT_PATH, "headers": []}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if not messages:
            await asyncio.Event().wait()
        return messages.pop(0)

    async def send(_: dict[str, Any]) -> None:
        pass

    async with served(chat_backend(stream)) as url:
        app = Gateway(make_state(models=[{"name": "llama", "backends": [{"url": f"{url}/v1"}]}]))
        await app.state.startup()
        try:
            await app(scope, receive, send)
        finally:
            await app.state.shutdown()
    fig = app.state.live.figures("llama", now=time.monotonic())
    assert (fig["requests_total"], fig["errors_total"], fig["samples"]) == (1, 0, 1)
    assert fig["tokens_per_s"] == 0.2  # 2 completion tokens over the 10 s window
    ttft, latency = fig["ttft_ms"]["p50"], fig["latency_ms"]["p50"]
    assert ttft is not None and latency is not None and 0 < ttft < latency
    assert latency >= 40  # two 20 ms pauses between events


async def test_two_processes_share_one_allowance_over_http(monkeypatch) -> None:
    """Two gateway states poll each other's real /internal/usage through aiohttp."""
    monkeypatch.setenv(PEER_SECRET_ENV, "s3cret")
    runners, states = [], []
    try:
        ports = []
        for _ in range(2):
            runner = web.ServerRunner(web.Server(lambda r: web.Response()))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            ports.append(runner.addresses[0][1])
            await runner.cleanup()  # only to reserve a free port number
        for mine, theirs in ((ports[0], ports[1]), (ports[1], ports[0])):
            config = GatewayConfig.model_validate(
                {"limits": {"peers": {"urls": [f"http://127.0.0.1:{theirs}"], "interval_s": 0.05}}}
            )
            state = GatewayState(config)
            states.append(state)
            app = Gateway(state)

            async def handle(request: web.BaseRequest, app: Gateway = app) -> web.Response:
                headers = {"authorization": request.headers.get("authorization", "")}
                status, _, body = await call(app, "GET", request.path, headers=headers)
                return web.Response(status=status, body=body)

            runner = web.ServerRunner(web.Server(handle))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", mine).start()
            runners.append(runner)
        for state in states:
            await state.startup()
        a, b = states
        b.live.record(
            "m", now=time.monotonic(), status=200, duration_s=0.01, ttft_s=None, completion_tokens=1
        )
        a.limiter.admit(POLICY, now=0)  # before B's first poll: part of A's baseline

        def b_has_seen(totals: list[int]) -> bool:  # what B last merged from A's answer
            return b.peers._seen.get(a.peers.instance, {}).get("team") == totals

        await eventually(lambda: b_has_seen([1, 0]), timeout=10, what="B's baseline of A")
        a.limiter.admit(POLICY, now=0)
        a.limiter.admit(POLICY, now=0)
        await eventually(lambda: b_has_seen([3, 0]), timeout=10, what="B to charge A's two")
        b.limiter.admit(POLICY, now=0)
        b.limiter.admit(POLICY, now=0)  # 2 seen from A + 2 here: the allowance is spent
        with pytest.raises(RateLimited):
            b.limiter.admit(POLICY, now=0)
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{ports[0]}{USAGE_PATH}"
            async with session.get(url) as resp:
                assert resp.status == 401
            async with session.get(url, headers={"authorization": "Bearer s3cret"}) as resp:
                answer = json.loads(await resp.read())
        assert answer["keys"] == {"team": [3, 0]}
        assert [live["totals"] for live in a.peers.peers_live("m")] == [[1, 0]]  # B's figures
    finally:
        for state in states:
            await state.shutdown()
        for runner in runners:
            await runner.cleanup()
