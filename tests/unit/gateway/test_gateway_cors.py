"""CORS in-process: allowed origins (port wildcards), preflights, errors a page can read, and
origins that get nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.config import CORSConfig, GatewayConfig
from modelgrid_serving.gateway.cors import CORS, OriginPolicy, with_cors
from pydantic import ValidationError
from test_gateway_asgi import KEY, call, error_code, make_gateway

pytestmark = pytest.mark.unit

LOCAL = ["http://localhost:*", "http://127.0.0.1:*", "https://app.example.com"]
PREFLIGHT = {"access-control-request-method": "POST"}


def cors_gateway(cors: dict[str, Any] | None = None, **overrides: Any) -> Any:
    config = CORSConfig.model_validate(cors if cors is not None else {"allow_origins": LOCAL})
    return with_cors(make_gateway(**overrides), config)


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("http://localhost", True),  # the default port is a port too
        ("HTTP://LocalHost:3000", True),
        ("http://127.0.0.1:8080", True),
        ("https://app.example.com", True),
        ("https://app.example.com:8443", False),  # exact origins mean their port only
        ("https://localhost:5173", False),  # another scheme
        ("http://localhost.evil.com:80", False),
        ("http://evil.com/http://localhost:1", False),
        ("http://localhost:12ab", False),
        ("null", False),
        ("", False),
    ],
)
def test_origin_policy(origin: str, allowed: bool) -> None:
    assert OriginPolicy(LOCAL).allows(origin) is allowed


def test_origin_policy_star_allows_any() -> None:
    assert OriginPolicy(["*"]).allows("https://anything.example:1")


@pytest.mark.parametrize(
    "cors",
    [
        {"allow_origins": ["localhost:3000"]},  # no scheme
        {"allow_origins": ["http://localhost:3000/"]},  # a path
        {"allow_origins": ["https://*.example.com"]},  # host wildcards are not supported
        {"allow_origins": ["*"], "allow_credentials": True},
        {"allow_origins": ["http://a"], "max_age_s": -1},
    ],
)
def test_cors_config_refuses(cors: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GatewayConfig.model_validate({"cors": cors})


def test_no_allowed_origin_installs_nothing() -> None:
    app = make_gateway()
    assert with_cors(app, CORSConfig()) is app
    assert isinstance(with_cors(app, CORSConfig(allow_origins=["*"])), CORS)


async def test_preflight_of_an_allowed_origin_is_204_with_its_headers() -> None:
    asked = {**PREFLIGHT, "origin": "http://localhost:5173"}
    asked["access-control-request-headers"] = "authorization, content-type, x-stainless-os"
    status, headers, body = await call(
        cors_gateway(), "OPTIONS", "/v1/chat/completions", b"", asked
    )
    assert (status, body) == (204, b"")
    assert cors_headers(headers) == {
        "access-control-allow-origin": "http://localhost:5173",
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "authorization, content-type, x-stainless-os",
        "access-control-max-age": "600",
    }  # no allow-credentials: not allowed unless configured
    assert headers["vary"] == "origin"


async def test_preflight_lists_configured_headers_and_credentials_when_set() -> None:
    cors = {
        "allow_origins": ["https://app.example.com"],
        "allow_headers": ["authorization", "content-type"],
        "allow_methods": ["POST"],
        "max_age_s": 60,
        "allow_credentials": True,
    }
    asked = {**PREFLIGHT, "origin": "https://app.example.com"}
    asked["access-control-request-headers"] = "x-anything"
    _, headers, _ = await call(cors_gateway(cors), "OPTIONS", "/v1/models", b"", asked)
    assert headers["access-control-allow-headers"] == "authorization, content-type"
    assert headers["access-control-allow-methods"] == "POST"
    assert headers["access-control-max-age"] == "60"
    assert headers["access-control-allow-credentials"] == "true"


async def test_preflight_of_another_origin_is_403_without_cors_headers() -> None:
    asked = {**PREFLIGHT, "origin": "https://evil.example"}
    status, headers, body = await call(
        cors_gateway(), "OPTIONS", "/v1/chat/completions", b"", asked
    )
    assert (status, error_code(body)) == (403, "origin_not_allowed")
    assert cors_headers(headers) == {} and headers["vary"] == "origin"


async def test_errors_carry_cors_headers_for_an_allowed_origin() -> None:
    key = {"name": "k", "sha256": hash_key(KEY)}
    app = cors_gateway(auth={"enabled": True, "keys": [key]})
    origin = {"origin": "http://127.0.0.1:3000"}
    body = json.dumps({"model": "gpt-9", "messages": []}).encode()
    status, headers, got = await call(app, "POST", "/v1/chat/completions", body, origin)
    assert (status, error_code(got)) == (401, "invalid_api_key")
    assert headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert "retry-after" in headers["access-control-expose-headers"]
    auth = {**origin, "authorization": f"Bearer {KEY}"}
    status, headers, got = await call(app, "POST", "/v1/chat/completions", body, auth)
    assert (status, error_code(got)) == (404, "model_not_found")
    assert headers["access-control-allow-origin"] == "http://127.0.0.1:3000"


async def test_another_origin_is_answered_without_cors_headers() -> None:
    status, headers, _ = await call(
        cors_gateway(), "GET", "/v1/models", b"", {"origin": "https://evil.example"}
    )
    assert status == 200 and cors_headers(headers) == {} and headers["vary"] == "origin"
    status, headers, _ = await call(cors_gateway(), "GET", "/v1/models")  # no Origin at all
    assert status == 200 and cors_headers(headers) == {} and "vary" not in headers


async def test_console_works_under_the_strictest_setting() -> None:
    """The console is the gateway's own origin: its requests need no CORS, so an allowlist that
    leaves that origin out (or no CORS at all) changes nothing for it."""
    own = {"origin": "http://gateway.internal:8080"}
    for app in (cors_gateway({"allow_origins": ["https://app.example.com"]}), make_gateway()):
        for path in ("/ui/", "/ui/app.js", "/v1/console", "/v1/models"):
            status, headers, _ = await call(app, "GET", path, b"", own)
            assert status == 200, path
            assert cors_headers(headers) == {}
