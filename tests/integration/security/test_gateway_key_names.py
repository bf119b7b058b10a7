"""Two keys given one ``name`` would share one allowlist cache and one set of buckets (a narrow
key inherited a broad key's allowlist after a reload): a duplicate name is a config error when
the keys are loaded, and a reload that brings one keeps the previous keys and says why."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import yaml
from integration.security.gateway_attack import bearer, chat, error_of, gateway, rewrite
from local_backend import CHAT_PATH
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.config import ConfigError, GatewayConfig, load_config
from modelgrid_serving.gateway.state import GatewayState
from polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.security]

BROAD, NARROW = "sk-broad-0001", "sk-narrow-0002"
MODELS = [
    {"name": "llama", "backends": [{"url": "http://127.0.0.1:9/v1"}]},
    {"name": "qwen", "backends": [{"url": "http://127.0.0.1:9/v1"}]},
]


def keys(*entries: dict[str, object]) -> str:
    return yaml.safe_dump({"keys": list(entries)})


def test_a_duplicate_name_in_the_keys_file_stops_the_gateway_at_start(tmp_path: Path) -> None:
    (tmp_path / "keys.yaml").write_text(
        keys(
            {"name": "team", "sha256": hash_key(BROAD)},
            {"name": "team", "sha256": hash_key(NARROW), "models": ["qwen"]},
        )
    )
    config = GatewayConfig.model_validate({"auth": {"enabled": True, "keys_file": "keys.yaml"}})
    config.auth.keys_file = tmp_path / "keys.yaml"
    with pytest.raises(ConfigError, match="key names must be unique.*'team'"):
        GatewayState(config)


def test_a_duplicate_name_inline_or_across_sources_is_a_config_error(tmp_path: Path) -> None:
    inline = [{"name": "team", "sha256": hash_key(BROAD)}]
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"auth": {"enabled": True, "keys": inline * 2}}))
    with pytest.raises(ConfigError, match="unique"):
        load_config(path)
    (tmp_path / "keys.yaml").write_text(keys({"name": "team", "sha256": hash_key(NARROW)}))
    both = {"enabled": True, "keys": inline, "keys_file": "keys.yaml"}
    path.write_text(yaml.safe_dump({"auth": both}))
    with pytest.raises(ValueError, match="unique"):
        GatewayState(load_config(path))


async def test_a_reload_with_a_duplicate_name_keeps_the_previous_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(
        keys(
            {"name": "broad", "sha256": hash_key(BROAD)},
            {"name": "narrow", "sha256": hash_key(NARROW), "models": ["qwen"]},
        )
    )
    config = {"models": MODELS, "auth": {"enabled": True, "keys_file": str(keys_file)}}
    async with (
        gateway(config, tmp_path) as gw,
        httpx.AsyncClient(base_url=gw.url, timeout=10) as client,
    ):
        assert (await client.get("/v1/models", headers=bearer(NARROW))).json()["data"][0]["id"] == (
            "qwen"
        )
        with caplog.at_level(logging.ERROR):
            rewrite(
                keys_file,
                keys(
                    {"name": "team", "sha256": hash_key(BROAD)},
                    {"name": "team", "sha256": hash_key(NARROW), "models": ["qwen"]},
                ),
            )
            await eventually(lambda: "unique" in caplog.text, what="the reload to be refused")
        assert "keeping the previous keys" in caplog.text and "'team'" in caplog.text
        listed = (await client.get("/v1/models", headers=bearer(NARROW))).json()["data"]
        assert [m["id"] for m in listed] == ["qwen"]  # still the narrow key, still narrow
        refused = await client.post(CHAT_PATH, json=chat("llama"), headers=bearer(NARROW))
        assert (refused.status_code, error_of(refused)["code"]) == (404, "model_not_found")
