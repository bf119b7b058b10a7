"""One model name served by a vLLM (CPU) pool and an MLX (CPU) pool through the gateway.

``modelgrid up examples/mixed-tiny.yaml`` runs both pools as Serve applications on this machine
and the gateway in front of them; clients use the real OpenAI SDK. What is measured is the
gateway's own per-pool request count (``/v1/stats``), before and after each phase.

How a pool is made slow, honestly: the MLX pool's engine process (its mlx-lm server) is paused
and resumed in a 100 ms cycle, running 10 ms of each (SIGSTOP/SIGCONT), the way ``cpulimit``
throttles a process: the pool keeps answering, several times slower, as a pool on fewer or
slower cores would. Nothing tells the gateway; only its latency and in-flight measurements do.
How a pool is stopped: its engine process is terminated, as when a node dies under it.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from local_stack import throttled
from mixed_support import Mixed
from polling import wait_for

pytestmark = pytest.mark.integration

REQUESTS, CONCURRENCY = 40, 4
SLOW_RUN_S, SLOW_PERIOD_S = 0.01, 0.1
SETTLE = 8
"""Requests sent after a change and not counted: the gateway measures the change first."""


def _per_pool(mixed: Mixed) -> dict[str, int]:
    with urllib.request.urlopen(f"{mixed.url}/v1/stats", timeout=10) as resp:
        (model,) = json.load(resp)["models"]
    return {b["backend"].split("/")[0]: b["requests"] for b in model["backends"]}


def _ready_pools(mixed: Mixed) -> set[str]:
    with urllib.request.urlopen(f"{mixed.url}/v1/stats", timeout=10) as resp:
        (model,) = json.load(resp)["models"]
    return {b["backend"].split("/")[0] for b in model["backends"] if b["ready"]}


def _client(mixed: Mixed) -> openai.OpenAI:
    """A client of the gateway (close it: ``with _client(mixed) as client``)."""
    return openai.OpenAI(base_url=f"{mixed.url}/v1", api_key="unused", max_retries=0, timeout=60)


def _burst(mixed: Mixed, n: int = REQUESTS) -> dict[str, int]:
    """``n`` chat completions, ``CONCURRENCY`` at a time; requests per pool during the burst."""
    with _client(mixed) as client:

        def one(_: int) -> str:
            reply = client.chat.completions.create(
                model=mixed.model, messages=[{"role": "user", "content": "hi"}], max_tokens=16
            )
            return reply.choices[0].finish_reason

        before = _per_pool(mixed)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            reasons = list(pool.map(one, range(n)))
    after = _per_pool(mixed)
    assert len(reasons) == n
    return {name: after[name] - before.get(name, 0) for name in after}


def _share(counts: dict[str, int], pool: str) -> float:
    return counts.get(pool, 0) / max(1, sum(counts.values()))


def test_mixed_one_name_over_a_vllm_pool_and_an_mlx_pool(mixed: Mixed) -> None:
    assert {name: engine for name, (engine, _) in mixed.pools.items()} == {
        "cpu": "vllm",
        "mac": "mlx",
    }
    with _client(mixed) as client:
        listed = [m.id for m in client.models.list()]
    assert listed.count(mixed.model) == 1
    counts = _burst(mixed)
    print(f"\nsplit over {REQUESTS} requests: {counts}")
    assert sum(counts.values()) == REQUESTS
    assert counts["cpu"] > 0 and counts["mac"] > 0, counts


def test_mixed_slowed_pool_gets_a_smaller_share(mixed: Mixed) -> None:
    base = _burst(mixed)
    with throttled(mixed.mlx_pid, run_s=SLOW_RUN_S, period_s=SLOW_PERIOD_S):
        _burst(mixed, SETTLE)
        slow = _burst(mixed)
    _burst(mixed, SETTLE)
    after = _burst(mixed)
    shares = [round(_share(c, "mac"), 3) for c in (base, slow, after)]
    print(f"\nmac share: normal {base}, slowed {slow}, resumed {after}; shares {shares}")
    assert base["mac"] > 0 and base["cpu"] > 0, base
    assert shares[1] < 0.5 * shares[0], shares  # the slowed pool's share at least halves
    assert after["mac"] > 0, after  # once resumed it is measured again and gets traffic


def test_mixed_stopped_pool_keeps_the_name_served(mixed: Mixed) -> None:
    os.kill(mixed.mlx_pid, signal.SIGTERM)
    started, statuses = time.monotonic(), []
    with _client(mixed) as client:
        for _ in range(30):
            try:
                client.chat.completions.create(
                    model=mixed.model, messages=[{"role": "user", "content": "hi"}], max_tokens=8
                )
                statuses.append(200)
            except openai.APIStatusError as exc:
                statuses.append(exc.status_code)
            time.sleep(0.1)
    print(
        f"\nafter the mac pool's engine stopped: {statuses} in {time.monotonic() - started:.1f} s"
    )
    assert statuses == [200] * 30
    # the health probe takes the pool out of the route
    wait_for(
        lambda: "mac" not in _ready_pools(mixed), timeout=30, what="the mac pool out of the route"
    )
    assert _ready_pools(mixed) == {"cpu"}
