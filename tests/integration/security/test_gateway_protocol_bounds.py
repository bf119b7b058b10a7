"""One admitted request asks for a batch: ``n`` of 128, thousands of prompts in one completions
request, ``max_tokens`` past the model's context. The gateway refuses each with a 400 naming the
field, before any backend (500,000 prompts were validated and sent on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from integration.security.gateway_attack import (
    Backend,
    backends,
    chat,
    error_of,
    gateway,
)
from local_backend import CHAT_PATH
from modelgrid_serving.gateway.sources import entry_from_inferencemodel

pytestmark = [pytest.mark.integration, pytest.mark.security]

COMPLETIONS = "/v1/completions"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (CHAT_PATH, chat("llama", n=128), "n"),
        (CHAT_PATH, chat("llama", n=17), "n"),
        (COMPLETIONS, {"model": "llama", "prompt": "hi", "best_of": 64}, "best_of"),
        (COMPLETIONS, {"model": "llama", "prompt": ["hi"] * 65}, "prompt"),
        (COMPLETIONS, {"model": "llama", "prompt": [[1, 2]] * 500_000}, "prompt"),
        (CHAT_PATH, chat("llama", max_tokens=4097), "max_tokens"),
        (CHAT_PATH, chat("llama", max_completion_tokens=10**9), "max_completion_tokens"),
        (COMPLETIONS, {"model": "llama", "prompt": "hi", "max_tokens": 4097}, "max_tokens"),
    ],
)
async def test_requests_over_the_protocol_bounds_are_refused_naming_the_field(
    tmp_path: Path, path: str, body: dict[str, Any], param: str
) -> None:
    async with backends(Backend()) as (backend,):
        config = {
            "models": [
                {"name": "llama", "max_model_len": 4096, "backends": [{"url": backend.url}]}
            ],
            "limits": {"max_body_bytes": 64 * 1024 * 1024},
        }
        async with gateway(config, tmp_path) as gw, httpx.AsyncClient(base_url=gw.url) as client:
            resp = await client.post(path, json=body, timeout=60)
    assert resp.status_code == 400
    error = error_of(resp)
    assert (error["param"], error["code"], error["type"]) == (
        param,
        "invalid_value",
        "invalid_request_error",
    )
    assert backend.seen == []


async def test_requests_within_the_bounds_go_through(tmp_path: Path) -> None:
    async with backends(Backend()) as (backend,):
        config = {
            "models": [{"name": "llama", "max_model_len": 4096, "backends": [{"url": backend.url}]}]
        }
        async with gateway(config, tmp_path) as gw, httpx.AsyncClient(base_url=gw.url) as client:
            for path, body in (
                (CHAT_PATH, chat("llama", n=16, max_tokens=4096)),
                (COMPLETIONS, {"model": "llama", "prompt": ["hi"] * 64}),
                (COMPLETIONS, {"model": "llama", "prompt": list(range(5000))}),  # one prompt
            ):
                assert (await client.post(path, json=body)).status_code == 200
    assert len(backend.seen) == 3


async def test_the_context_of_an_inferencemodel_bounds_max_tokens(tmp_path: Path) -> None:
    async with backends(Backend()) as (backend,):
        obj = {
            "metadata": {"namespace": "team-a", "name": "tiny"},
            "spec": {"servedModelName": "tiny", "engineArgs": {"maxModelLen": 512}},
            "status": {
                "phase": "Ready",
                "pools": [
                    {"name": "cpu", "readyReplicas": 1, "endpoint": backend.url[: -len("/v1")]}
                ],
            },
        }
        async with gateway({}, tmp_path) as gw, httpx.AsyncClient(base_url=gw.url) as client:
            gw.state.catalog.set_entries("kubernetes:*", [entry_from_inferencemodel(obj)])
            refused = await client.post(CHAT_PATH, json=chat("tiny", max_tokens=513))
            fits = await client.post(CHAT_PATH, json=chat("tiny", max_tokens=512))
    assert (refused.status_code, error_of(refused)["param"]) == (400, "max_tokens")
    assert "512" in error_of(refused)["message"]
    assert fits.status_code == 200
