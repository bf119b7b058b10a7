"""What the chart hands the gateway is what the gateway reads: its config file and keys file.

The gateway's typed config (``modelgrid_serving/gateway/config.py``) is the source of truth:
the chart's config file and keys Secret must load with it, and values.schema.json must take
exactly the fields of one key. Skipped, with the reason, where the gateway package is absent.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, VALUE_SETS, Rendered

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
    secret = rendered[name].keys_secret()
    entry = _config(rendered[name])["auth"]["secret_key"]
    keys = gateway_config.load_keys(base64.b64decode(secret["data"][entry]).decode())
    assert keys and all(k.name for k in keys)


def test_chart_gateway_cors_is_off_by_default_and_reaches_the_config(rendered, tmp_path):
    assert "cors" not in _config(rendered["default"])  # no origin: the gateway answers no CORS
    path = tmp_path / "config.yaml"
    path.write_text(rendered["full-values"].one("ConfigMap", "gateway")["data"]["config.yaml"])
    cors = gateway_config.load_config(path).cors
    assert cors.allow_origins == ["https://chat.example.com", "http://localhost:*"]
    assert cors.allow_headers == ["authorization", "content-type"]
    assert (cors.max_age_s, cors.allow_credentials) == (3600, False)
    assert cors.expose_headers == gateway_config.CORSConfig().expose_headers  # the default


def test_chart_schema_cors_fields_are_the_gateways():
    schema = json.loads((CHART / "values.schema.json").read_text())
    cors = schema["properties"]["gateway"]["properties"]["cors"]["properties"]
    renamed = {"max_age_s": "maxAgeSeconds"}
    fields = gateway_config.CORSConfig.model_fields
    camel = {renamed.get(n) or n.split("_")[0] + n.split("_")[1].title() for n in fields}
    assert set(cors) == camel
    assert cors["allowOrigins"]["items"]["pattern"] == gateway_config.ORIGIN


def test_chart_schema_key_fields_are_the_gateways():
    schema = json.loads((CHART / "values.schema.json").read_text())
    key = schema["definitions"]["apiKey"]
    fields = gateway_config.KeyConfig.model_fields
    assert set(key["properties"]) == set(fields)
    assert set(key["required"]) == {n for n, f in fields.items() if f.is_required()}
    json_schema = gateway_config.KeyConfig.model_json_schema()
    assert key["properties"]["sha256"]["pattern"] == json_schema["properties"]["sha256"]["pattern"]


def test_chart_admin_values_reach_the_gateway_config(rendered, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(rendered["admin-values"].one("ConfigMap", "gateway")["data"]["config.yaml"])
    admin = gateway_config.load_config(path).admin
    assert (admin.enabled, admin.namespace, admin.accelerator, admin.max_models) == (
        True,
        "models",
        "cpu",
        8,
    )
    default = yaml.safe_load(rendered["default"].one("ConfigMap", "gateway")["data"]["config.yaml"])
    assert "admin" not in default


def test_chart_auth_fields_are_the_gateways():
    fields = gateway_config.AuthConfig.model_fields
    assert {"enabled", "secret_name", "secret_key"} <= set(fields)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["gateway"]["apiKeys"]["secretKey"] == fields["secret_key"].default


def _parsed(objects: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The gateway container's command line, through the ``modelgrid`` CLI (serve stubbed)."""
    gateway = pytest.importorskip("modelgrid_serving.gateway")
    from modelgrid_cli.main import main

    container = objects.one("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["modelgrid", "gateway"]
    seen: dict[str, Any] = {}

    def fake_serve(config: Any, **kwargs: Any) -> None:
        seen.update(kwargs, config=config)

    monkeypatch.setattr(gateway, "serve", fake_serve)
    assert main([*container["command"][1:], *container["args"]]) == 0
    seen.pop("check_spec")  # the admin API's check, always handed over (tests/unit/cli)
    return seen


def test_chart_gateway_cli_takes_the_chart_args(rendered, monkeypatch):
    seen = _parsed(rendered["default"], monkeypatch)
    assert seen == {
        "config": Path("/etc/modelgrid/gateway/config.yaml"),
        "host": "0.0.0.0",
        "port": 8080,
        "kubernetes": True,
        "namespaces": (),
        "metrics_port": 9090,
    }


def test_chart_gateway_cli_takes_one_watched_namespace(helm, monkeypatch):
    result = helm.template("--set", "watchNamespaces={team-a}")
    assert result.returncode == 0, result.stderr
    objects = Rendered(
        "one-namespace", result.stdout, [o for o in yaml.safe_load_all(result.stdout) if o]
    )
    assert _parsed(objects, monkeypatch)["namespaces"] == ("team-a",)


def test_chart_gateway_cli_takes_every_watched_namespace(rendered, monkeypatch):
    assert _parsed(rendered["namespaced-values"], monkeypatch)["namespaces"] == ("team-a", "team-b")
