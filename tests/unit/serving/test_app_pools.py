"""One Serve application per pool: the names, prefixes and checks both sides rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelgrid_serving.app import build_app
from modelgrid_serving.config import AppConfig, application_name, route_prefix, split_pools

pytestmark = pytest.mark.unit

CPU = {"name": "cpu", "accelerator": "cpu", "engine": "vllm", "min_replicas": 1, "max_replicas": 1}
MAC = {**CPU, "name": "mac", "accelerator": "apple", "engine": "mlx"}


def config(*pools: dict[str, Any], source: str = "org/model") -> AppConfig:
    return AppConfig(model_name="m", model_source=source, pools=pools)


def test_split_pools_gives_each_pool_its_own_config() -> None:
    apps = split_pools(config(CPU, MAC))
    assert [[p.name for p in a.pools] for a in apps] == [["cpu"], ["mac"]]
    assert {a.model_name for a in apps} == {"m"}


def test_application_name_and_route_prefix_one_pool_unchanged() -> None:
    assert application_name("m", "cpu", 1) == "m" and route_prefix("cpu", 1) == "/"


def test_application_name_and_route_prefix_several_pools() -> None:
    assert application_name("m", "mac", 2) == "m-mac"
    assert route_prefix("mac", 2) == "/pools/mac"


def test_build_app_refuses_several_pools() -> None:
    with pytest.raises(ValueError, match="2 pools in one application"):
        build_app(config(CPU, MAC).model_dump(mode="json"))


def test_build_app_mlx_pool_needs_its_server(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no mlx_server_url"):
        build_app(config(MAC, source=str(tmp_path)).model_dump(mode="json"))
