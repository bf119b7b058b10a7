"""A multi-pool InferenceModel becomes one backend per pool endpoint, labelled with the pool."""

from __future__ import annotations

from typing import Any

import pytest
from modelgrid_serving.gateway.routing import build_table
from modelgrid_serving.gateway.sources import (
    entries_from_inferencemodels,
    entry_from_inferencemodel,
)
from modelgrid_serving.protocol.capabilities import (
    ALL_CAPABILITIES,
    Capability,
    engine_capabilities,
)

pytestmark = pytest.mark.unit

SERVICE = "http://llama-serve-svc.team.svc:8000"


def two_pool_model(phase: str = "Ready", gpu_ready: int = 1, mac_ready: int = 1) -> dict[str, Any]:
    """What the operator writes for a model with an NVIDIA and an Apple pool."""
    return {
        "metadata": {"name": "llama", "namespace": "team"},
        "status": {
            "phase": phase,
            "endpoint": f"{SERVICE}/pools/gpu/v1",
            "servedModelNames": ["llama"],
            "readyReplicas": gpu_ready + mac_ready,
            "pools": [
                {
                    "name": "gpu",
                    "accelerator": "nvidia",
                    "engine": "vllm",
                    "readyReplicas": gpu_ready,
                    "desiredReplicas": 1,
                    "endpoint": f"{SERVICE}/pools/gpu",
                },
                {
                    "name": "mac",
                    "accelerator": "apple",
                    "engine": "mlx",
                    "readyReplicas": mac_ready,
                    "desiredReplicas": 1,
                    "endpoint": f"{SERVICE}/pools/mac",
                },
            ],
        },
    }


def test_pool_backends_two_pools_are_two_backends_labelled_by_pool() -> None:
    entry = entry_from_inferencemodel(two_pool_model())
    assert [(b.pool, b.url, b.ready) for b in entry.backends] == [
        ("gpu", f"{SERVICE}/pools/gpu/v1", True),
        ("mac", f"{SERVICE}/pools/mac/v1", True),
    ]
    route = build_table([entry]).resolve("llama")
    assert [b.pool for b in route.backends] == ["gpu", "mac"]


def test_pool_backends_a_pool_without_replicas_leaves_the_route_and_the_model_stays_served() -> (
    None
):
    table = build_table(entries_from_inferencemodels([two_pool_model("Degraded", mac_ready=0)]))
    route = table.resolve("llama")
    assert [b.pool for b in route.backends] == ["gpu"]
    assert b'"llama"' in table.listing


def test_pool_backends_a_model_that_does_not_serve_routes_to_no_pool() -> None:
    entry = entry_from_inferencemodel(two_pool_model("Loading"))
    assert [b.ready for b in entry.backends] == [False, False]


def test_pool_backends_pool_without_endpoint_is_not_a_backend() -> None:
    model = two_pool_model()
    del model["status"]["pools"][1]["endpoint"]  # e.g. refused by the memory admission
    assert [b.pool for b in entry_from_inferencemodel(model).backends] == ["gpu"]


def test_pool_backends_older_operator_without_pool_endpoints_gives_the_model_endpoint() -> None:
    model = two_pool_model()
    for pool in model["status"]["pools"]:
        del pool["endpoint"]
    (backend,) = entry_from_inferencemodel(model).backends
    assert (backend.url, backend.pool) == (f"{SERVICE}/pools/gpu/v1", "gpu+mac")


def test_pool_backends_declare_what_each_engine_serves_by_the_spec() -> None:
    plain = {b.pool: b.capabilities for b in entry_from_inferencemodel(two_pool_model()).backends}
    assert plain == {"gpu": engine_capabilities("vllm"), "mac": engine_capabilities("mlx")}
    model = two_pool_model()
    model["spec"] = {"toolCalling": {}, "reasoning": {"parser": "qwen3"}}  # parser: auto
    tools = {b.pool: b.capabilities for b in entry_from_inferencemodel(model).backends}
    assert tools["gpu"] == engine_capabilities(
        "vllm", tool_call_parser="auto", reasoning_parser="qwen3"
    )
    assert Capability.TOOLS in tools["gpu"] and Capability.REASONING in tools["gpu"]


def test_pool_backends_unknown_engine_serves_everything_one_endpoint_what_all_pools_serve() -> None:
    model = two_pool_model()
    model["status"]["pools"][1]["engine"] = "tgi"  # an operator newer than this gateway
    backends = entry_from_inferencemodel(model).backends
    assert backends[1].capabilities == ALL_CAPABILITIES
    for pool in model["status"]["pools"]:
        del pool["endpoint"]
    model["status"]["pools"][1]["engine"] = "mlx"
    (only,) = entry_from_inferencemodel(model).backends
    assert only.capabilities == engine_capabilities("vllm") & engine_capabilities("mlx")
