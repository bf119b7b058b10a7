"""Sources: InferenceModel status (plain dicts) and the static file become routing entries."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.config import ConfigError, GatewayConfig, load_config
from modelgrid_serving.gateway.routing import build_table
from modelgrid_serving.gateway.sources import (
    entries_from_inferencemodels,
    entry_from_inferencemodel,
    keys_from_secret,
    static_entries,
)
from modelgrid_serving.protocol.capabilities import ALL_CAPABILITIES, Capability
from pydantic import ValidationError

pytestmark = pytest.mark.unit

ENDPOINT = "http://llama-serve-svc.team.svc:8000/v1"


def make_inferencemodel(name: str = "llama", **status: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "phase": "Ready",
        "endpoint": ENDPOINT,
        "servedModelNames": [name, f"{name}-chat"],
        "readyReplicas": 2,
        "pools": [
            {
                "name": "gpu",
                "accelerator": "nvidia",
                "engine": "vllm",
                "readyReplicas": 1,
                "desiredReplicas": 1,
            },
            {
                "name": "mac",
                "accelerator": "apple",
                "engine": "mlx",
                "readyReplicas": 1,
                "desiredReplicas": 2,
            },
        ],
    }
    return {
        "metadata": {
            "name": name,
            "namespace": "team",
            "creationTimestamp": "2026-01-02T03:04:05Z",
        },
        "spec": {"aliases": ["spec-alias"]},
        "status": {**base, **status},
    }


def test_entry_from_ready_inferencemodel() -> None:
    entry = entry_from_inferencemodel(make_inferencemodel())
    assert entry.name == "llama"
    assert entry.aliases == ("llama-chat",)
    assert [b.url for b in entry.backends] == [ENDPOINT]
    assert entry.backends[0].ready
    assert entry.backends[0].pool == "gpu+mac"
    assert [(p.name, p.ready_replicas, p.desired_replicas) for p in entry.pools] == [
        ("gpu", 1, 1),
        ("mac", 1, 2),
    ]
    assert entry.source == "kubernetes:team/llama"
    assert entry.created == 1767323045


@pytest.mark.parametrize(
    "status", [{"phase": "Loading"}, {"phase": "Failed"}, {"readyReplicas": 0}, {"endpoint": None}]
)
def test_inferencemodel_not_serving_is_known_but_not_ready(status: dict[str, Any]) -> None:
    table = build_table(entries_from_inferencemodels([make_inferencemodel(**status)]))
    assert "llama" in table.routes
    assert table.routes["llama"].backends == ()


def test_degraded_inferencemodel_still_serves() -> None:
    entry = entry_from_inferencemodel(make_inferencemodel(phase="Degraded"))
    assert entry.backends[0].ready


def test_inferencemodel_without_status_takes_names_from_spec() -> None:
    obj = {
        "metadata": {"name": "qwen", "namespace": "x"},
        "spec": {"servedModelName": "qwen-7b", "aliases": ["q"]},
    }
    entry = entry_from_inferencemodel(obj)  # type: ignore[arg-type]
    assert (entry.name, entry.aliases, entry.backends) == ("qwen-7b", ("q",), ())


def test_static_entries_keep_upstream_names() -> None:
    config = GatewayConfig.model_validate(
        {
            "models": [
                {
                    "name": "tiny",
                    "aliases": ["t"],
                    "backends": [{"url": "http://h:1/v1/", "model": "/m", "pool": "apple"}],
                }
            ]
        }
    )
    (entry,) = static_entries(config, created=5)
    (backend,) = entry.backends
    assert (backend.url, backend.upstream_model, backend.pool) == ("http://h:1/v1", "/m", "apple")


def test_static_backends_declare_capabilities_or_serve_everything(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "models:\n- name: m\n  backends:\n  - url: http://a/v1\n    capabilities: [tools, n]\n"
        "  - url: http://b/v1\n"
    )
    (entry,) = static_entries(load_config(path), created=0)
    assert [b.capabilities for b in entry.backends] == [
        {Capability.TOOLS, Capability.N},
        ALL_CAPABILITIES,
    ]
    path.write_text(
        "models:\n- name: m\n  backends:\n  - url: http://a/v1\n    capabilities: [x]\n"
    )
    with pytest.raises(ConfigError, match=r"models\.0\.backends\.0\.capabilities\.0.*'tools'"):
        load_config(path)


def test_load_config_resolves_keys_file_next_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("auth:\n  enabled: true\n  keys_file: keys.yaml\n")
    assert load_config(path).auth.keys_file == tmp_path / "keys.yaml"


def test_config_refuses_unknown_fields_and_bad_urls() -> None:
    with pytest.raises(ValidationError):
        GatewayConfig.model_validate({"modles": []})
    with pytest.raises(ValidationError):
        GatewayConfig.model_validate({"models": [{"name": "x", "backends": [{"url": "h:1"}]}]})


def test_keys_from_secret() -> None:
    doc = f"keys:\n  - name: ci\n    sha256: {hash_key('k')}\n    models: [tiny]\n"
    secret = {
        "metadata": {"name": "keys"},
        "data": {"keys.yaml": base64.b64encode(doc.encode()).decode()},
    }
    (key,) = keys_from_secret(secret, "keys.yaml")
    assert (key.name, key.models) == ("ci", ["tiny"])
    assert keys_from_secret({"data": {}}, "keys.yaml") == []
