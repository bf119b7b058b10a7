"""``/v1/stats`` as data: every backend of a model (a not-ready one marked so) with its load, the
pools as the operator counts them, the tokens the gateway counted; a key allowed a model by
namespace sees only that namespace's backends, and a model it may not use is not named."""

from __future__ import annotations

import time

import pytest
from modelgrid_serving.gateway.auth import KeyPolicy
from modelgrid_serving.gateway.balancer import Balancer
from modelgrid_serving.gateway.catalog import Catalog
from modelgrid_serving.gateway.exchange import Exchange
from modelgrid_serving.gateway.routing import (
    Backend,
    ModelEntry,
    PoolInfo,
    ResourceStatus,
    allowed_routes,
)
from modelgrid_serving.gateway.stats import Stats

pytestmark = pytest.mark.unit

TEAM_A = Backend(url="http://a:8000/v1", pool="nvidia", namespace="team-a")
TEAM_B = Backend(url="http://b:8000/v1", pool="apple", namespace="team-b")
LOADING = Backend(url="http://c:8000/v1", pool="nvidia", ready=False, namespace="team-a")
OTHER = Backend(url="http://d:8000/v1")


def _stats() -> tuple[Stats, Balancer]:
    catalog = Catalog(auth_enabled=False, max_concurrent_per_key=4)
    catalog.set_entries(
        "kubernetes",
        [
            ModelEntry(
                name="llama",
                aliases=("l",),
                backends=(TEAM_A, LOADING, TEAM_B),
                pools=(
                    PoolInfo("nvidia", "nvidia", "vllm", 1, 2),
                    PoolInfo("apple", None, "mlx", 1, 1),
                ),
                source="kubernetes",
                statuses=(ResourceStatus("team-a/llama"), ResourceStatus("team-b/llama")),
            ),
            ModelEntry(name="qwen", backends=(OTHER,)),
        ],
    )
    balancer = Balancer(max_in_flight=8)
    return Stats(catalog, balancer, started=time.time() - 10), balancer


def _served(model: str, prompt: int, completion: int) -> Exchange:
    x = Exchange(
        scope={},
        route="chat",
        model=model,
        body=b"{}",
        payload={},
        headers=[],
        policy=KeyPolicy(name="k"),
        reserved=0,
        started=time.perf_counter(),
    )
    x.prompt_tokens, x.completion_tokens = prompt, completion
    return x


def test_stats_show_every_backend_its_load_and_the_tokens_counted() -> None:
    stats, balancer = _stats()
    balancer.started(TEAM_A.url)
    balancer.started(TEAM_B.url)
    balancer.finished(TEAM_B.url, now=time.monotonic())
    stats.count(_served("llama", 7, 3))
    stats.count(_served("llama", 1, 2))

    body = stats.render()

    assert body["object"] == "stats"
    assert body["uptime_s"] >= 10
    assert body["in_flight"] == 1
    llama, qwen = body["models"]
    assert [
        (b["backend"], b["ready"], b["in_flight"], b["requests"]) for b in llama["backends"]
    ] == [
        ("nvidia/0", True, 1, 1),
        ("nvidia/1", False, 0, 0),
        ("apple/2", True, 0, 1),
    ]
    assert llama["aliases"] == ["l"]
    assert llama["ready"] is True
    assert [p["name"] for p in llama["pools"]] == ["nvidia", "apple"]
    assert llama["ready_replicas"] == 2  # the operator's count, not the backends'
    assert llama["requests"] == 2
    assert llama["tokens"] == {"prompt": 8, "completion": 5, "total": 13}
    assert qwen["ready_replicas"] == 1  # no pools reported: the ready backends
    assert qwen["tokens"]["total"] == 0


def test_stats_for_a_namespace_key_show_that_namespace_only() -> None:
    stats, _ = _stats()
    allowed = allowed_routes(stats.catalog.table, None, frozenset({"team-b"}))

    (llama,) = stats.render(allowed)["models"]

    assert llama["id"] == "llama"
    assert [b["backend"] for b in llama["backends"]] == ["apple/0"]


def test_stats_for_a_key_allowed_a_model_by_name_show_all_its_backends() -> None:
    stats, _ = _stats()
    allowed = allowed_routes(stats.catalog.table, ["l"], None)

    (llama,) = stats.render(allowed)["models"]

    assert len(llama["backends"]) == 3
