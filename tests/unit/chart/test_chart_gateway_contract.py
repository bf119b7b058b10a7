"""What the chart hands the gateway is what the gateway reads: its config file and keys file.

The gateway's typed config (``modelgrid_serving/gateway/config.py``) is the source of truth:
the chart's config file and keys Secret must load with it, and values.schema.json must take
exactly the fields of one key. Skipped, with the reason, where the gateway package is absent.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml
from chart_support import CHART, VALUE_SETS

pytestmark = pytest.mark.unit

gateway_config = pytest.importorskip(
    "modelgrid_serving.gateway.config", reason="the gateway (issue 6) is not in this checkout"
)


def _config(objects: Any) -> dict[str, Any]:
    return yaml.safe_load(objects.one("ConfigMap", "gateway")["data"]["config.yaml"])


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_gateway_config_file_loads(rendered, name, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(rendered[name].one("ConfigMap", "gateway")["data"]["config.yaml"])
    config = gateway_config.load_config(path)
    assert config.auth.enabled is True
    assert config.auth.secret_name and config.auth.secret_key


@pytest.mark.parametrize("name", ["default", "namespaced-values"])
def test_chart_keys_secret_loads(rendered, name):
    secret = rendered[name].one("Secret")
    entry = _config(rendered[name])["auth"]["secret_key"]
    keys = gateway_config.load_keys(base64.b64decode(secret["data"][entry]).decode())
    assert keys and all(k.name for k in keys)


def test_chart_schema_key_fields_are_the_gateways():
    schema = json.loads((CHART / "values.schema.json").read_text())
    key = schema["definitions"]["apiKey"]
    fields = gateway_config.KeyConfig.model_fields
    assert set(key["properties"]) == set(fields)
    assert set(key["required"]) == {n for n, f in fields.items() if f.is_required()}
    json_schema = gateway_config.KeyConfig.model_json_schema()
    assert key["properties"]["sha256"]["pattern"] == json_schema["properties"]["sha256"]["pattern"]


def test_chart_auth_fields_are_the_gateways():
    fields = gateway_config.AuthConfig.model_fields
    assert {"enabled", "secret_name", "secret_key"} <= set(fields)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["gateway"]["apiKeys"]["secretKey"] == fields["secret_key"].default
