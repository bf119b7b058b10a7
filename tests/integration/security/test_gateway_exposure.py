"""What the gateway tells a client without a key, or with a narrow one: ``GET /`` lists no model
without a valid key, ``/v1/stats`` shows only what a key may use, and the Prometheus metrics
(key names, every model's traffic) are not on the API port at all; the metrics name keys only by
their configured names, whatever a client sends as a key."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from integration.security.gateway_attack import bearer, chat, gateway
from local_backend import CHAT_PATH
from modelgrid_serving.gateway.auth import hash_key

pytestmark = [pytest.mark.integration, pytest.mark.security]

NARROW, LIMITED = "sk-narrow-0001", "sk-limited-0002"
RAW_GUESSES = ["sk-guess-aaaa", "limited", 'x",key="injected', "sk-" + "z" * 60]
MODELS = [
    {"name": "llama", "backends": [{"url": "http://127.0.0.1:9/v1"}]},
    {"name": "qwen", "aliases": ["chat"], "backends": [{"url": "http://127.0.0.1:9/v1"}]},
]
CONFIG = {
    "models": MODELS,
    "auth": {
        "enabled": True,
        "keys": [
            {"name": "narrow", "sha256": hash_key(NARROW), "models": ["chat"]},
            {"name": "limited", "sha256": hash_key(LIMITED), "requests_per_minute": 1},
        ],
    },
}


async def test_the_root_lists_models_only_to_a_valid_key(tmp_path: Path) -> None:
    async with gateway(CONFIG, tmp_path) as gw, httpx.AsyncClient(base_url=gw.url) as client:
        for headers in ({}, bearer("sk-wrong")):
            info = (await client.get("/", headers=headers)).json()
            assert info["models"] == [] and info["role"] == "gateway"
        assert (await client.get("/", headers=bearer(NARROW))).json()["models"] == ["qwen", "chat"]
        assert (await client.get("/", headers=bearer(LIMITED))).json()["models"] == [
            "llama",
            "qwen",
            "chat",
        ]


async def test_stats_follow_the_keys_allowlist(tmp_path: Path) -> None:
    async with gateway(CONFIG, tmp_path) as gw, httpx.AsyncClient(base_url=gw.url) as client:
        assert (await client.get("/v1/stats")).status_code == 401
        narrow = (await client.get("/v1/stats", headers=bearer(NARROW))).json()
        assert [m["id"] for m in narrow["models"]] == ["qwen"]
        full = (await client.get("/v1/stats", headers=bearer(LIMITED))).json()
        assert [m["id"] for m in full["models"]] == ["llama", "qwen"]


async def test_metrics_are_on_their_own_port_and_name_keys_by_configured_name_only(
    tmp_path: Path,
) -> None:
    async with gateway(CONFIG, tmp_path) as gw, httpx.AsyncClient(base_url=gw.url) as client:
        for headers in ({}, bearer(LIMITED)):
            refused = await client.get("/metrics", headers=headers)
            assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found")
        for guess in RAW_GUESSES:  # unknown keys: refused before any limit or label
            assert (
                await client.post(CHAT_PATH, json=chat("llama"), headers=bearer(guess))
            ).status_code == 401
        for _ in range(3):  # the minute's one request, then 429s counted by key name
            await client.post(CHAT_PATH, json=chat("llama"), headers=bearer(LIMITED))
        text = (await client.get(f"http://127.0.0.1:{gw.metrics_port}/metrics")).text
    assert 'modelgrid_gateway_rate_limited_total{key="limited",limit="requests"} 2.0' in text
    keys = set(re.findall(r'\bkey="((?:[^"\\]|\\.)*)"', text))
    assert keys == {"limited"}
    for secret in (NARROW, LIMITED, *RAW_GUESSES[:1], RAW_GUESSES[3], "injected"):
        assert secret not in text
