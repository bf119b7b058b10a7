"""Local mode with several pools: one Serve application per pool, each at ``/pools/<pool>``.

Two MLX pools keep it light (a vLLM pool beside an MLX one is the same code, and
examples/mixed-tiny.yaml); the stack's teardown checks that SIGTERM leaves no process behind,
the pools' MLX servers included.
"""

from __future__ import annotations

import re

import httpx
import openai
import pytest
from local_stack import MLX_POOLS, Stack

pytestmark = pytest.mark.integration


def test_local_prints_one_line_per_pool(mlx_pools_stack: Stack) -> None:
    log = mlx_pools_stack.log.read_text()
    lines = re.findall(r"\[modelgrid\] pool (\S+) \((\S+)\) at (\S+)", log)
    assert lines == [(pool, "mlx", f"{mlx_pools_stack.url}/pools/{pool}") for pool in MLX_POOLS], (
        log
    )


@pytest.mark.parametrize("pool", MLX_POOLS)
def test_local_each_pool_serves_the_model(mlx_pools_stack: Stack, pool: str) -> None:
    base = f"{mlx_pools_stack.url}/pools/{pool}"
    with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as client:
        assert [m.id for m in client.models.list().data] == [
            mlx_pools_stack.model,
            mlx_pools_stack.alias,
        ]
        reply = client.chat.completions.create(
            model=mlx_pools_stack.alias,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        chunks = list(reply)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    metrics = httpx.get(f"{base}/metrics", timeout=30).text
    assert f'pool="{pool}"' in metrics  # each application is its own pool's replica


def test_local_pools_are_not_at_the_root(mlx_pools_stack: Stack) -> None:
    assert httpx.get(f"{mlx_pools_stack.url}/v1/models", timeout=30).status_code == 404
