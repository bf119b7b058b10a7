"""An operator pastes a raw API key where its hash belongs (a keys file's ``sha256``, inline keys,
the keys Secret), or breaks the YAML on that line: the gateway refuses the keys, and no log line
and no error message carries the key (it was logged at ERROR level)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
import yaml
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.config import ConfigError, load_config
from modelgrid_serving.gateway.sources import keys_from_secret
from modelgrid_serving.gateway.state import GatewayState
from polling import eventually
from integration.security.gateway_attack import gateway, rewrite

pytestmark = [pytest.mark.integration, pytest.mark.security]

RAW = "sk-live-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
PASTED = yaml.safe_dump({"keys": [{"name": "team-a", "sha256": RAW}]})
BROKEN = f'keys:\n  - name: team-a\n    sha256: "{RAW}\n'  # an unterminated string on its line


def shown(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the captured records would print, tracebacks included."""
    formatter = logging.Formatter("%(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records)


@pytest.mark.parametrize("text", [PASTED, BROKEN], ids=["pasted", "broken-yaml"])
def test_a_raw_key_in_the_keys_file_is_refused_at_start_without_being_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    (tmp_path / "keys.yaml").write_text(text)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"auth": {"enabled": True, "keys_file": "keys.yaml"}}))
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as refused:
        GatewayState(load_config(path))
    assert RAW not in str(refused.value) and RAW not in shown(caplog)
    assert "sha256" in str(refused.value) or "line 3" in str(refused.value)  # says where


@pytest.mark.parametrize("text", [PASTED, BROKEN], ids=["pasted", "broken-yaml"])
async def test_a_raw_key_in_a_reloaded_keys_file_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({"keys": [{"name": "ok", "sha256": hash_key("sk-1")}]}))
    config = {"auth": {"enabled": True, "keys_file": str(keys_file)}}
    async with gateway(config, tmp_path) as gw:
        with caplog.at_level(logging.DEBUG):
            rewrite(keys_file, text)
            await eventually(
                lambda: "keeping the previous keys" in caplog.text, what="the reload refused"
            )
        assert len(gw.state.catalog.keys) == 1
    assert RAW not in shown(caplog)


async def test_a_raw_key_inline_in_a_reloaded_config_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway({}, tmp_path):
        with caplog.at_level(logging.DEBUG):
            inline = {"auth": {"enabled": True, "keys": [{"name": "a", "sha256": RAW}]}}
            rewrite(tmp_path / "gateway.yaml", yaml.safe_dump(inline))
            await eventually(
                lambda: "keeping the previous config" in caplog.text, what="the reload refused"
            )
    assert RAW not in shown(caplog)


def test_a_raw_key_in_the_keys_secret_is_refused_without_being_shown() -> None:
    secret = {"data": {"keys.yaml": base64.b64encode(PASTED.encode()).decode()}}
    with pytest.raises(ConfigError) as refused:
        keys_from_secret(secret, "keys.yaml")
    assert RAW not in str(refused.value) and "keys.0.sha256" in str(refused.value)
