"""Bad input and refusals, with raw HTTP: each gets its OpenAI-shaped error and status."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from gateway_support import Backends, Gateway, Servers, static_config
from modelgrid_serving.gateway.auth import hash_key
from polling import wait_for

pytestmark = pytest.mark.integration

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
ALICE, BOB, CAROL, DAVE = "sk-alice-0001", "sk-bob-0002", "sk-carol-0003", "sk-dave-0004"


def error_of(resp: httpx.Response, check_schema: Callable[[str, Any], None]) -> dict[str, Any]:
    body = resp.json()
    check_schema("ErrorResponse", body)
    return body["error"]


@pytest.mark.parametrize(
    ("content", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (b'{"messages": []}', "model", "invalid_value"),
        (b'{"model": 7}', "model", "invalid_value"),
    ],
)
def test_bad_body_is_400(
    gateway: Gateway,
    check_schema: Callable[[str, Any], None],
    content: bytes,
    param: str | None,
    code: str,
) -> None:
    resp = httpx.post(
        gateway.v1 + "/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400
    error = error_of(resp, check_schema)
    assert (error["param"], error["code"]) == (param, code)


def test_unknown_model_is_404_model_not_found(
    gateway: Gateway, check_schema: Callable[[str, Any], None]
) -> None:
    resp = httpx.post(gateway.v1 + "/chat/completions", json={**CHAT, "model": "gpt-9"})
    assert resp.status_code == 404
    assert error_of(resp, check_schema)["code"] == "model_not_found"
    resp = httpx.get(gateway.v1 + "/models/gpt-9")
    assert resp.status_code == 404
    with (
        openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0) as client,
        pytest.raises(openai.NotFoundError),
    ):
        client.chat.completions.create(model="gpt-9", messages=CHAT["messages"])


def test_known_model_without_ready_backend_is_503_with_retry_after(
    gateway: Gateway, check_schema: Callable[[str, Any], None]
) -> None:
    for resp in (
        httpx.post(gateway.v1 + "/chat/completions", json={**CHAT, "model": "ghost"}),
        httpx.get(gateway.v1 + "/models/ghost"),
    ):
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "5"
        assert error_of(resp, check_schema)["code"] == "model_not_ready"


def test_unknown_route_is_404_and_wrong_method_405(
    gateway: Gateway, check_schema: Callable[[str, Any], None]
) -> None:
    resp = httpx.get(gateway.v1 + "/nothing")
    assert resp.status_code == 404
    assert error_of(resp, check_schema)["code"] == "not_found"
    resp = httpx.get(gateway.v1 + "/chat/completions")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"
    assert error_of(resp, check_schema)["code"] == "method_not_allowed"
    assert httpx.post(gateway.v1 + "/models", json={}).status_code == 405


def test_oversized_body_is_413(gateway: Gateway, check_schema: Callable[[str, Any], None]) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}  # limit: 64 KiB
    resp = httpx.post(gateway.v1 + "/chat/completions", json=big)
    assert resp.status_code == 413
    assert error_of(resp, check_schema)["code"] == "request_too_large"
    chunked = httpx.post(gateway.v1 + "/chat/completions", content=iter([b"{" + b" " * 40_000] * 2))
    assert chunked.status_code == 413


def test_bad_requests_do_not_disturb_a_stream_in_progress(gateway: Gateway) -> None:
    body = {**CHAT, "max_tokens": 64, "stream": True}
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, timeout=60) as resp:
        pieces = resp.iter_raw()
        next(pieces)
        for bad in (b"{", b"[]", b'{"model": "nope"}'):
            assert httpx.post(gateway.v1 + "/chat/completions", content=bad).status_code in (
                400,
                404,
            )
        rest = b"".join(pieces)
    assert rest.rstrip().endswith(b"data: [DONE]")


def test_health_ready_info_metrics_stats(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/ready").status_code == 200
    info = httpx.get(gateway.url + "/").json()
    assert info["role"] == "gateway" and "/v1/chat/completions" in info["endpoints"]
    httpx.post(gateway.v1 + "/chat/completions", json=CHAT).raise_for_status()
    assert httpx.get(gateway.url + "/metrics").status_code == 404  # its own port only
    metrics = httpx.get(gateway.metrics_url + "/metrics").text
    for family in (
        "modelgrid_gateway_requests_total",
        "modelgrid_gateway_request_duration_seconds",
        "modelgrid_gateway_requests_in_flight",
        "modelgrid_gateway_prompt_tokens_total",
        "modelgrid_gateway_generation_tokens_total",
        "modelgrid_gateway_backends_ready",
    ):
        assert family in metrics
    assert re.search(
        r'modelgrid_gateway_requests_total\{model="tiny",pool="[ab]",route="chat",status="200"\}',
        metrics,
    )
    stats = {m["id"]: m for m in httpx.get(gateway.v1 + "/stats").json()["models"]}
    assert stats["tiny"]["ready"] and not stats["ghost"]["ready"]
    assert stats["tiny"]["requests"] >= 1 and stats["tiny"]["tokens"]["completion"] >= 1
    assert [b["backend"] for b in stats["tiny"]["backends"]] == ["a/0", "b/1"]


# ---- keys and limits --------------------------------------------------------------------------


def keys_doc(*extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "keys": [
            {"name": "alice", "sha256": hash_key(ALICE)},
            {"name": "bob", "sha256": hash_key(BOB), "models": ["tiny-b"]},
            {"name": "carol", "sha256": hash_key(CAROL), "requests_per_minute": 2},
            {"name": "dave", "sha256": hash_key(DAVE), "tokens_per_minute": 10},
            *extra,
        ]
    }


@pytest.fixture(scope="module")
def keyed(
    session_servers: Servers, backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Path]]:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys_file.write_text(yaml.safe_dump(keys_doc()))
    config = static_config(backends, auth={"enabled": True, "keys_file": str(keys_file)})
    gw = session_servers.gateway(config, name="gateway-keyed")
    wait_for(
        lambda: httpx.get(gw.v1 + "/models", headers=bearer(ALICE)).json()["data"],
        timeout=30,
        what="models listed",
    )
    yield gw, keys_file


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def chat_as(gw: Gateway, key: str, **fields: Any) -> httpx.Response:
    """A chat completion (``CHAT``, ``fields`` changed) sent with API key ``key``."""
    return httpx.post(gw.v1 + "/chat/completions", json={**CHAT, **fields}, headers=bearer(key))


def test_missing_or_wrong_key_is_401(
    keyed: tuple[Gateway, Path], check_schema: Callable[[str, Any], None]
) -> None:
    gw, _ = keyed
    for headers in ({}, bearer("sk-wrong")):
        resp = httpx.post(gw.v1 + "/chat/completions", json=CHAT, headers=headers)
        assert resp.status_code == 401
        assert error_of(resp, check_schema)["code"] == "invalid_api_key"
        assert httpx.get(gw.v1 + "/models", headers=headers).status_code == 401
    assert httpx.get(gw.url + "/health").status_code == 200  # probes need no key
    with (
        openai.OpenAI(base_url=gw.v1, api_key="sk-wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()
    with openai.OpenAI(base_url=gw.v1, api_key=ALICE) as alice:
        reply = alice.chat.completions.create(model="tiny", messages=CHAT["messages"], max_tokens=2)
    assert reply.model == "tiny"


def test_allowlist_answers_as_unknown_and_filters_the_listing(
    keyed: tuple[Gateway, Path], check_schema: Callable[[str, Any], None]
) -> None:
    gw, _ = keyed
    resp = chat_as(gw, BOB)
    assert resp.status_code == 404
    assert error_of(resp, check_schema)["code"] == "model_not_found"
    assert [m["id"] for m in httpx.get(gw.v1 + "/models", headers=bearer(BOB)).json()["data"]] == [
        "tiny-b"
    ]
    ok = chat_as(gw, BOB, model="tiny-b")
    assert ok.status_code == 200
    with (
        openai.OpenAI(base_url=gw.v1, api_key=BOB, max_retries=0) as bob,
        pytest.raises(openai.NotFoundError),
    ):
        bob.chat.completions.create(model="tiny-chat", messages=CHAT["messages"])


def test_requests_per_minute_is_429_with_openai_headers(
    keyed: tuple[Gateway, Path], check_schema: Callable[[str, Any], None]
) -> None:
    gw, _ = keyed
    first = chat_as(gw, CAROL)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    chat_as(gw, CAROL).raise_for_status()
    refused = chat_as(gw, CAROL)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    error = error_of(refused, check_schema)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    with (
        openai.OpenAI(base_url=gw.v1, api_key=CAROL, max_retries=0) as carol,
        pytest.raises(openai.RateLimitError),
    ):
        carol.chat.completions.create(model="tiny", messages=CHAT["messages"])
    # other keys are not affected
    assert chat_as(gw, ALICE).status_code == 200


def test_tokens_per_minute_counts_real_usage(keyed: tuple[Gateway, Path]) -> None:
    gw, _ = keyed
    first = chat_as(gw, DAVE)
    assert first.status_code == 200  # admitted with a full bucket; its ~19 tokens overdraw it
    refused = chat_as(gw, DAVE)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_keys_file_is_reloaded_without_restart(keyed: tuple[Gateway, Path]) -> None:
    gw, keys_file = keyed
    erin = "sk-erin-0005"
    assert httpx.get(gw.v1 + "/models", headers=bearer(erin)).status_code == 401
    keys_file.write_text(yaml.safe_dump(keys_doc({"name": "erin", "sha256": hash_key(erin)})))
    wait_for(
        lambda: httpx.get(gw.v1 + "/models", headers=bearer(erin)).status_code == 200,
        timeout=10,
        what="the new key to be accepted",
    )


def test_in_flight_bound_answers_503_at_once(servers: Servers, backends: Backends) -> None:
    config = static_config(backends)
    config["limits"]["max_in_flight_per_backend"] = 1
    config["models"] = [config["models"][1]]  # tiny-b: one backend
    gw = servers.gateway(config, name="gateway-bounded")
    wait_for(lambda: httpx.get(gw.v1 + "/models").json()["data"], timeout=30, what="tiny-b ready")
    long = {**CHAT, "model": "tiny-b", "max_tokens": 1800, "stream": True}
    with httpx.stream("POST", gw.v1 + "/chat/completions", json=long, timeout=60) as resp:
        assert resp.status_code == 200
        pieces = resp.iter_raw()  # held: a dropped iterator closes the stream
        next(pieces)
        started = time.perf_counter()
        refused = httpx.post(gw.v1 + "/chat/completions", json={**CHAT, "model": "tiny-b"})
        assert time.perf_counter() - started < 2.0  # the held stream lasts seconds: no queue
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        assert refused.headers["retry-after"] == "1"
    # the client closed the stream: its upstream request ends and frees the slot
    wait_for(
        lambda: (
            httpx.post(gw.v1 + "/chat/completions", json={**CHAT, "model": "tiny-b"}).status_code
            == 200
        ),
        timeout=10,
        what="the slot to be free again",
    )
