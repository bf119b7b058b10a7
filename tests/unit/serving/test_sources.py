"""Model sources: local paths are checked before anything starts; remote ones pass through."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelgrid_serving.app import deployment_name, deployment_options
from modelgrid_serving.config import AppConfig
from modelgrid_serving.sources import ModelSourceError, resolve_model_source

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("source", ["meta-llama/Llama-3.1-8B", "s3://bucket/model", "gs://b/m"])
def test_remote_sources_pass_through(source: str) -> None:
    assert resolve_model_source(source) == source


def test_local_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model_source("./m") == str(tmp_path / "m")
    assert resolve_model_source(f"file://{tmp_path}/m") == str(tmp_path / "m")


def test_missing_local_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError) as info:
        resolve_model_source(str(tmp_path / "nope"))
    assert "\n" not in str(info.value) and "does not exist" in str(info.value)


def make_config(**overrides: object) -> AppConfig:
    pool = {
        "name": "gpu-a",
        "accelerator": "nvidia",
        "engine": "vllm",
        "min_replicas": 2,
        "max_replicas": 4,
        "ray_resource": "modelgrid.io/pool-gpu-a",
    }
    fields = {"model_name": "org/llama.3", "model_source": "org/llama", "pool": pool}
    return AppConfig.model_validate({**fields, **overrides})


def test_deployment_name_is_model_and_pool() -> None:
    config = make_config()
    assert deployment_name(config) == "org_llama_3-gpu-a"


def test_deployment_options_replicas_and_pool_resource() -> None:
    config = make_config(target_ongoing_requests=8)
    options = deployment_options(config)
    assert options["autoscaling_config"] == {
        "min_replicas": 2,
        "max_replicas": 4,
        "initial_replicas": 2,
        "target_ongoing_requests": 8,
    }
    assert options["ray_actor_options"] == {"resources": {"modelgrid.io/pool-gpu-a": 1}}
    assert options["max_ongoing_requests"] == 64
