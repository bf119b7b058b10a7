"""A pod that reaches a replica directly (or the gateway's bound switched off) cannot make it
read an unbounded body.

Trigger (issue 15): the replica read request bodies without any size limit. The replica's
ASGI app is driven here without an engine: a body over ``AppConfig.max_body_bytes`` is refused
with 413 in OpenAI's error shape, declared (Content-Length) or streamed (chunked).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from modelgrid_serving.api import build_api
from modelgrid_serving.config import AppConfig
from modelgrid_serving.metrics import Metrics

pytestmark = [pytest.mark.unit, pytest.mark.security]

LIMIT = 1024


class NoEngine:
    """An engine that must never be reached: the body is refused before."""

    kind = "none"
    version = "0"

    def max_model_len(self) -> int:
        return 512

    async def chat(self, body: dict[str, Any]) -> Any:
        raise AssertionError("an over-limit body reached the engine")

    completions = chat


def app(limit: int = LIMIT) -> Any:
    config = AppConfig.model_validate(
        {
            "model_name": "tiny",
            "model_source": "/models/tiny",
            "max_body_bytes": limit,
            "pool": {
                "name": "p",
                "accelerator": "cpu",
                "engine": "vllm",
                "min_replicas": 1,
                "max_replicas": 1,
            },
        }
    )
    return build_api(NoEngine(), config, metrics=Metrics(), created=0)  # type: ignore[arg-type]


def call(
    asgi: Any, chunks: Iterator[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, Any], int]:
    """POST /v1/chat/completions the way a pod's HTTP client would; returns the status, the
    JSON answer and how many body bytes the app pulled before answering."""
    pulled = 0
    sent: list[dict[str, Any]] = []
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("10.0.0.9", 40000),
        "server": ("10.0.0.1", 8000),
    }
    asyncio.run(asgi(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


def test_replica_body_declared_over_the_limit_is_refused_before_it_is_read():
    chunks = iter([b"x" * 4096] * 256)  # 1 MiB on its way
    status, answer, pulled = call(app(), chunks, [(b"content-length", str(4096 * 256).encode())])
    assert status == 413
    assert answer["error"]["code"] == "request_too_large"
    assert answer["error"]["type"] == "invalid_request_error"
    assert str(LIMIT) in answer["error"]["message"]
    assert pulled == 0


def test_replica_body_chunked_over_the_limit_is_refused_once_it_passes_it():
    chunks = iter([b"x" * 512] * 2048)  # no Content-Length: Transfer-Encoding chunked
    status, answer, pulled = call(app(), chunks, [(b"transfer-encoding", b"chunked")])
    assert status == 413
    assert answer["error"]["code"] == "request_too_large"
    assert pulled <= LIMIT + 512


def test_replica_body_under_the_limit_is_read_and_judged_on_its_merits():
    body = json.dumps({"model": "unknown-model", "messages": []}).encode()
    status, answer, _ = call(app(), iter([body]), [(b"content-length", str(len(body)).encode())])
    assert status == 404  # read in full, then refused for what it asks, not for its size
    assert answer["error"]["code"] == "model_not_found"


def test_replica_body_limit_defaults_to_the_gateways():
    from modelgrid_serving.gateway.config import LimitsConfig

    default = AppConfig.model_fields["max_body_bytes"].default
    assert default == LimitsConfig.model_fields["max_body_bytes"].default
