"""One Serve application per pool: the names, prefixes and checks both sides rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelgrid_serving.app import build_app
from modelgrid_serving.config import AppConfig, LocalRun, application_name, route_prefix
from pydantic import ValidationError

pytestmark = pytest.mark.unit

CPU = {"name": "cpu", "accelerator": "cpu", "engine": "vllm", "min_replicas": 1, "max_replicas": 1}
MAC = {**CPU, "name": "mac", "accelerator": "apple", "engine": "mlx"}


def local_run(*pools: dict[str, Any], source: str = "org/model") -> LocalRun:
    return LocalRun(model_name="m", model_source=source, pools=pools)


def test_local_run_gives_each_pool_its_own_application() -> None:
    apps = local_run(CPU, MAC).applications()
    assert [a.pool.name for a in apps] == ["cpu", "mac"]
    assert {a.model_name for a in apps} == {"m"}


def test_local_run_needs_a_pool() -> None:
    with pytest.raises(ValidationError, match="pools"):
        local_run()


def test_application_name_and_route_prefix_one_pool_unchanged() -> None:
    assert application_name("m", "cpu", 1) == "m" and route_prefix("cpu", 1) == "/"


def test_application_name_and_route_prefix_several_pools() -> None:
    assert application_name("m", "mac", 2) == "m-mac"
    assert route_prefix("mac", 2) == "/pools/mac"


def test_build_app_refuses_several_pools_in_one_application() -> None:
    """An application holds one pool: a Serve config that lists several is refused by name."""
    several = {"model_name": "m", "model_source": "org/model", "pools": [CPU, MAC]}
    with pytest.raises(ValidationError, match="pools"):
        build_app(several)
    with pytest.raises(ValidationError, match="engine"):
        build_app(
            {"model_name": "m", "model_source": "org/model", "pool": {**CPU, "engine": "auto"}}
        )


def test_build_app_mlx_pool_needs_its_server(tmp_path: Path) -> None:
    app = AppConfig(model_name="m", model_source=str(tmp_path), pool=MAC)
    with pytest.raises(ValueError, match="no mlx_server_url"):
        build_app(app.model_dump(mode="json"))
