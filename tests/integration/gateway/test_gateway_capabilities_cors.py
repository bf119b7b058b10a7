"""Capability routing, pool pinning and CORS through the real gateway process and HTTP server,
in front of real mlx_lm.server backends on the tiny model.

One model over two pools: ``open`` declares nothing (it serves everything), ``apple`` declares
what the MLX engine serves. mlx_lm.server itself ignores fields it does not know (``n: 2``
answers one choice), so the gateway is what keeps a request from a pool that cannot serve it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gateway_support import Backends, Gateway, Servers, backend
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.protocol.capabilities import Capability, engine_capabilities
from polling import wait_for

pytestmark = pytest.mark.integration

PINNER, PLAIN = "sk-pinner-0001", "sk-plain-0002"
ORIGIN = "http://localhost:5173"
MLX = [c.value for c in Capability if c in engine_capabilities("mlx")]


@pytest.fixture()
def mixed(servers: Servers, backends: Backends) -> Gateway:
    apple = {**backend(backends.b, backends.tiny, "apple"), "capabilities": MLX}
    config = {
        "models": [
            {"name": "mixed", "backends": [backend(backends.a, backends.tiny, "open"), apple]}
        ],
        "auth": {
            "enabled": True,
            "keys": [
                {"name": "pinner", "sha256": hash_key(PINNER), "pool_pinning": True},
                {"name": "plain", "sha256": hash_key(PLAIN)},
            ],
        },
        "cors": {"allow_origins": ["http://localhost:*"]},
        "limits": {"health_interval_s": 0.5},
    }
    gw = servers.gateway(config, name="gateway-mixed")
    wait_for(
        lambda: httpx.get(gw.v1 + "/models", headers=auth(PLAIN)).json()["data"],
        timeout=30,
        what="the gateway to list mixed",
    )
    return gw


def auth(key: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **headers}


def chat(
    gw: Gateway, key: str = PLAIN, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    body = {
        "model": "mixed",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
        **kw,
    }
    return httpx.post(
        gw.v1 + "/chat/completions", json=body, headers=auth(key, **(headers or {})), timeout=60
    )


def served_by_pool(gw: Gateway) -> dict[str, int]:
    (model,) = httpx.get(gw.v1 + "/stats", headers=auth(PLAIN)).json()["models"]
    return {b["backend"].partition("/")[0]: b["requests"] for b in model["backends"]}


def test_a_request_only_one_pool_serves_goes_to_that_pool(mixed: Gateway) -> None:
    before = served_by_pool(mixed)
    for _ in range(6):
        resp = chat(mixed, min_tokens=1)  # MLX cannot hold back the end of sequence
        assert resp.status_code == 200, resp.text
    after = served_by_pool(mixed)
    assert (after["open"] - before["open"], after["apple"] - before["apple"]) == (6, 0)


def test_what_no_pool_serves_is_400_naming_the_param(
    servers: Servers, backends: Backends, check_schema: Callable[[str, Any], None]
) -> None:
    only_mlx = {
        "models": [
            {
                "name": "m",
                "backends": [{**backend(backends.a, backends.tiny, "apple"), "capabilities": MLX}],
            }
        ],
        "limits": {"health_interval_s": 0.5},
    }
    gw = servers.gateway(only_mlx, name="gateway-mlx-only")
    wait_for(lambda: httpx.get(gw.v1 + "/models").json()["data"], timeout=30, what="m listed")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "n": 2}
    resp = httpx.post(gw.v1 + "/chat/completions", json=body, timeout=30)
    assert resp.status_code == 400
    check_schema("ErrorResponse", resp.json())
    error = resp.json()["error"]
    assert (error["param"], error["code"]) == ("n", "unsupported_parameter")
    # no CORS configured: a backend's own CORS headers (mlx_lm.server allows every origin) are
    # not relayed, so no page of another origin reads the answer
    ok = httpx.post(
        gw.v1 + "/chat/completions", json={**body, "n": 1}, headers={"origin": ORIGIN}, timeout=30
    )
    assert ok.status_code == 200
    assert not [h for h in ok.headers if h.startswith("access-control-")]
    card = httpx.get(gw.v1 + "/models/m").json()
    assert card["capabilities"] == MLX and card["pools"] == [{"name": "apple", "capabilities": MLX}]


def test_pinning_reaches_the_pool_and_is_refused_where_not_allowed(mixed: Gateway) -> None:
    before = served_by_pool(mixed)
    for _ in range(4):
        assert chat(mixed, PINNER, {"x-modelgrid-pool": "apple"}).status_code == 200
    after = served_by_pool(mixed)
    assert (after["open"] - before["open"], after["apple"] - before["apple"]) == (0, 4)
    refused = chat(mixed, PLAIN, {"x-modelgrid-pool": "apple"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        403,
        "pool_pinning_not_allowed",
    )
    unknown = chat(mixed, PINNER, {"x-modelgrid-pool": "tpu"})
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (404, "x-modelgrid-pool")
    cannot = chat(mixed, PINNER, {"x-modelgrid-pool": "apple"}, n=2)
    assert (cannot.status_code, cannot.json()["error"]["param"]) == (400, "n")


def test_cors_preflight_and_answers_over_the_wire(mixed: Gateway) -> None:
    preflight = {
        "origin": ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    resp = httpx.options(mixed.v1 + "/chat/completions", headers=preflight)
    assert resp.status_code == 204 and resp.content == b""
    assert resp.headers["access-control-allow-origin"] == ORIGIN
    assert resp.headers["access-control-allow-headers"] == "authorization, content-type"
    assert "POST" in resp.headers["access-control-allow-methods"]
    assert resp.headers["access-control-max-age"] == "600"
    assert resp.headers["vary"] == "origin"
    assert "access-control-allow-credentials" not in resp.headers
    evil = httpx.options(
        mixed.v1 + "/chat/completions", headers={**preflight, "origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    assert not [h for h in evil.headers if h.startswith("access-control-")]
    # answers, errors included, carry CORS headers for the allowed origin
    ok = chat(mixed, headers={"origin": ORIGIN})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    denied = httpx.get(mixed.v1 + "/models", headers={"origin": ORIGIN})
    assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == ORIGIN
    assert "retry-after" in denied.headers["access-control-expose-headers"]
    other = chat(mixed, headers={"origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
