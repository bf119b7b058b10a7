"""The ASGI app in-process, no sockets: routes, refusals before any backend, listing, keys."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.config import GatewayConfig
from modelgrid_serving.gateway.state import GatewayState

pytestmark = pytest.mark.unit

KEY = "sk-unit-0001"


def make_gateway(**overrides: Any) -> Gateway:
    config = {
        "models": [
            {"name": "llama", "aliases": ["chat"], "backends": [{"url": "http://127.0.0.1:9/v1"}]},
        ],
        "limits": {"max_body_bytes": 64},
        **overrides,
    }
    return Gateway(GatewayState(GatewayConfig.model_validate(config)))


async def call(
    app: Gateway,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    stay: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI app; returns status, headers and body.

    ``stay``: the client stays connected after sending its body (else it hangs up at once,
    which a proxied request takes as a disconnect).
    """
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not messages and stay:
            await asyncio.Event().wait()
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    out_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], out_headers, b"".join(m.get("body", b"") for m in sent[1:])


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


async def test_health_and_info() -> None:
    app = make_gateway()
    assert (await call(app, "GET", "/health"))[2] == b'{"status":"ok"}'
    status, _, body = await call(app, "GET", "/")
    assert status == 200 and json.loads(body)["role"] == "gateway"


async def test_listing_names_and_aliases_with_and_without_v1() -> None:
    app = make_gateway()
    for path in ("/v1/models", "/models"):
        status, headers, body = await call(app, "GET", path)
        assert status == 200 and headers["content-type"] == "application/json"
        assert [m["id"] for m in json.loads(body)["data"]] == ["llama", "chat"]
    status, _, body = await call(app, "GET", "/v1/models/chat")
    assert json.loads(body)["root"] == "llama"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/chat/completions", b"{nope", 400, "invalid_json"),
        ("POST", "/v1/chat/completions", b'{"messages": []}', 400, "invalid_value"),
        ("POST", "/chat/completions", b'{"model": "gpt-9"}', 404, "model_not_found"),
        (
            "POST",
            "/v1/completions",
            b'{"model": "llama", "prompt": "' + b"x" * 64 + b'"}',
            413,
            "request_too_large",
        ),
        ("GET", "/v1/chat/completions", b"", 405, "method_not_allowed"),
        ("DELETE", "/v1/models", b"", 405, "method_not_allowed"),
        ("GET", "/v2/anything", b"", 404, "not_found"),
        ("GET", "/v1/models/gpt-9", b"", 404, "model_not_found"),
    ],
)
async def test_refusals_are_openai_errors(
    method: str, path: str, body: bytes, status: int, code: str
) -> None:
    got_status, headers, got_body = await call(make_gateway(), method, path, body)
    assert (got_status, error_code(got_body)) == (status, code)
    if status == 405:
        assert headers["allow"] in ("GET", "POST")


async def test_oversized_content_length_is_refused_before_reading() -> None:
    status, _, body = await call(
        make_gateway(), "POST", "/v1/chat/completions", b"", {"content-length": "100000"}
    )
    assert (status, error_code(body)) == (413, "request_too_large")


async def test_model_without_ready_backend_is_503_retry_after() -> None:
    app = make_gateway()
    app.state.catalog.set_down(frozenset({"http://127.0.0.1:9/v1"}))
    status, headers, body = await call(app, "POST", "/v1/chat/completions", b'{"model": "chat"}')
    assert (status, headers["retry-after"], error_code(body)) == (503, "5", "model_not_ready")
    assert json.loads((await call(app, "GET", "/v1/models"))[2])["data"] == []


async def test_keys_401_404_and_filtered_listing() -> None:
    keys = [{"name": "ci", "sha256": hash_key(KEY), "models": ["other"]}]
    app = make_gateway(auth={"enabled": True, "keys": keys})
    status, _, body = await call(app, "GET", "/v1/models")
    assert (status, error_code(body)) == (401, "invalid_api_key")
    auth = {"authorization": f"Bearer {KEY}"}
    status, _, body = await call(app, "GET", "/v1/models", headers=auth)
    assert status == 200 and json.loads(body)["data"] == []
    status, _, body = await call(app, "POST", "/v1/chat/completions", b'{"model": "chat"}', auth)
    assert (status, error_code(body)) == (404, "model_not_found")  # as if it did not exist
    assert (await call(app, "GET", "/health"))[0] == 200  # probes need no key


async def test_rate_limit_429_headers_before_any_backend() -> None:
    keys = [{"name": "ci", "sha256": hash_key(KEY), "requests_per_minute": 1}]
    app = make_gateway(auth={"enabled": True, "keys": keys})
    policy = app.state.catalog.keys.authenticate(f"Bearer {KEY}".encode())
    app.state.limiter.admit(policy, now=time.monotonic())  # the minute's one request
    auth = {"authorization": f"Bearer {KEY}"}
    status, headers, body = await call(
        app, "POST", "/v1/chat/completions", b'{"model": "llama"}', auth
    )
    assert (status, error_code(body)) == (429, "rate_limit_exceeded")
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"


async def test_ready_waits_for_pending_sources() -> None:
    app = make_gateway()
    assert (await call(app, "GET", "/ready"))[0] == 200
    app.state.catalog.pending_sources.add("kubernetes")
    status, _, body = await call(app, "GET", "/ready")
    assert (status, error_code(body)) == (503, "starting")
    app.state.catalog.set_entries("kubernetes", [])
    assert (await call(app, "GET", "/ready"))[0] == 200
