"""A key probes models it may not use: the allowlist is applied before anything about the model
is told, so a forbidden model answers exactly as one that does not exist (status and body; it
was 403 against 404, and 503 told that it existed and was loading). A key limited to namespace
team-a cannot reach a model served from team-b, nor team-b's replicas of a name both serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from integration.security.gateway_attack import Backend, backends, bearer, chat, gateway
from local_backend import CHAT_PATH
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.sources import entry_from_inferencemodel

pytestmark = [pytest.mark.integration, pytest.mark.security]

KEY = "sk-team-a-0001"


def same_as_unknown(resp: httpx.Response, unknown: httpx.Response, name: str) -> None:
    """``resp`` (for ``name``) is the answer for an unknown model, the name aside."""
    assert resp.status_code == unknown.status_code == 404
    assert resp.text == unknown.text.replace("ghost", name)
    assert dict(resp.headers).keys() == dict(unknown.headers).keys()


async def test_a_forbidden_model_answers_as_an_unknown_one(tmp_path: Path) -> None:
    async with backends(Backend()) as (up,):
        config = {
            "models": [
                {"name": "llama", "backends": [{"url": up.url}]},
                {"name": "qwen", "aliases": ["chat"], "backends": [{"url": up.url}]},
                {"name": "loading", "backends": [{"url": "http://127.0.0.1:9/v1"}]},
            ],
            "auth": {
                "enabled": True,
                "keys": [{"name": "a", "sha256": hash_key(KEY), "models": ["llama"]}],
            },
        }
        async with gateway(config, tmp_path) as gw:
            gw.state.catalog.set_down(
                frozenset({"http://127.0.0.1:9/v1"})
            )  # what the health probe finds
            async with httpx.AsyncClient(base_url=gw.url, headers=bearer(KEY)) as client:
                unknown = await client.post(CHAT_PATH, json=chat("ghost"))
                for name in ("qwen", "chat", "loading"):
                    same_as_unknown(await client.post(CHAT_PATH, json=chat(name)), unknown, name)
                unknown_card = await client.get("/v1/models/ghost")
                for name in ("qwen", "chat", "loading"):
                    same_as_unknown(await client.get(f"/v1/models/{name}"), unknown_card, name)
                assert (await client.post(CHAT_PATH, json=chat("llama"))).status_code == 200
        assert [seen["model"] for seen in up.seen] == ["llama"]


def inference_model(namespace: str, name: str, served: str, backend: Backend) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": {"servedModelName": served},
        "status": {
            "phase": "Ready",
            "servedModelNames": [served],
            "pools": [
                {
                    "name": "nvidia",
                    "readyReplicas": 1,
                    "endpoint": backend.url.removesuffix("/v1"),
                }
            ],
        },
    }


async def test_a_key_limited_to_a_namespace_reaches_only_that_namespaces_models(
    tmp_path: Path,
) -> None:
    async with backends(Backend(), Backend()) as (team_a, team_b):
        objs = [
            inference_model("team-a", "alpha", "alpha", team_a),
            inference_model("team-b", "beta", "beta", team_b),
            inference_model("team-a", "shared-a", "shared", team_a),
            inference_model("team-b", "shared-b", "shared", team_b),
        ]
        key = {"name": "a", "sha256": hash_key(KEY), "namespaces": ["team-a"]}
        config = {"auth": {"enabled": True, "keys": [key]}}
        async with gateway(config, tmp_path) as gw:
            gw.state.catalog.set_entries(
                "kubernetes:*", [entry_from_inferencemodel(o) for o in objs]
            )
            async with httpx.AsyncClient(base_url=gw.url, headers=bearer(KEY)) as client:
                listed = (await client.get("/v1/models")).json()["data"]
                assert sorted(m["id"] for m in listed) == ["alpha", "shared"]
                unknown = await client.post(CHAT_PATH, json=chat("ghost"))
                same_as_unknown(await client.post(CHAT_PATH, json=chat("beta")), unknown, "beta")
                for _ in range(8):
                    assert (await client.post(CHAT_PATH, json=chat("shared"))).status_code == 200
                assert (await client.post(CHAT_PATH, json=chat("alpha"))).status_code == 200
                stats = (await client.get("/v1/stats")).json()["models"]
        assert team_b.seen == []  # not one prompt of team-a's key reached team-b's replicas
        assert len(team_a.seen) == 9
        assert sorted(m["id"] for m in stats) == ["alpha", "shared"]
        assert [len(m["backends"]) for m in sorted(stats, key=lambda m: m["id"])] == [1, 1]
