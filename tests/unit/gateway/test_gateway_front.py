"""The gateway in front of local pools: its static file lists each pool as a backend."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from modelgrid_serving.config import LocalRun, PoolConfig
from modelgrid_serving.gateway.config import GatewayConfig
from modelgrid_serving.gateway.front import front_config
from modelgrid_serving.gateway.routing import build_table
from modelgrid_serving.gateway.sources import static_entries
from modelgrid_serving.protocol.capabilities import engine_capabilities

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Endpoint:
    pool: str
    url: str
    engine: str = "vllm"


def test_front_config_one_name_over_every_pool_labelled_by_pool():
    pools = tuple(
        PoolConfig(name=n, accelerator="cpu", engine=e, min_replicas=1, max_replicas=1)
        for n, e in (("cpu", "vllm"), ("apple", "mlx"))
    )
    app = LocalRun(model_name="tiny", aliases=("tiny-chat",), model_source="/m", pools=pools)
    endpoints = [
        Endpoint("cpu", "http://127.0.0.1:9000/pools/cpu"),
        Endpoint("apple", "http://127.0.0.1:9000/pools/apple/", "mlx"),
    ]
    config = GatewayConfig.model_validate(front_config(app, endpoints))
    table = build_table(static_entries(config, created=0))
    route = table.resolve("tiny-chat")
    assert route.model == "tiny"
    assert [(b.pool, b.url) for b in route.backends] == [
        ("cpu", "http://127.0.0.1:9000/pools/cpu/v1"),
        ("apple", "http://127.0.0.1:9000/pools/apple/v1"),
    ]
    assert config.limits.health_interval_s > 0  # a pool that stops answering leaves the route
    # each pool declares what its engine serves; tests may pin a pool
    declared = {b.pool: b.capabilities for b in route.backends}
    assert declared == {"cpu": engine_capabilities("vllm"), "apple": engine_capabilities("mlx")}
    assert config.routing.allow_pool_pinning
    assert config.cors.allow_origins == ["http://localhost:*", "http://127.0.0.1:*"]


def test_front_config_capabilities_follow_the_parsers():
    pools = (
        PoolConfig(name="a", accelerator="cpu", engine="vllm", min_replicas=1, max_replicas=1),
    )
    app = LocalRun(
        model_name="tiny",
        model_source="/m",
        pools=pools,
        tool_call_parser="hermes",
        reasoning_parser="qwen3",
    )
    config = GatewayConfig.model_validate(front_config(app, [Endpoint("a", "http://x")]))
    assert set(config.models[0].backends[0].capabilities or ()) == engine_capabilities(
        "vllm", tool_call_parser="hermes", reasoning_parser="qwen3"
    )
