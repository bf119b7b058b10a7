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

import openai
import pytest
from local_stack import throttled
from mixed_support import Mixed, burst, gateway_client, ready_pools, requests_per_pool
from modelgrid_serving.protocol.capabilities import engine_capabilities
from polling import wait_for

pytestmark = pytest.mark.integration

SLOW_RUN_S, SLOW_PERIOD_S = 0.01, 0.1
SETTLE = 8
"""Requests sent after a change and not counted: the gateway measures the change first."""


def _share(counts: dict[str, int], pool: str) -> float:
    return counts.get(pool, 0) / max(1, sum(counts.values()))


def test_mixed_request_one_engine_cannot_serve_goes_to_the_other(mixed: Mixed) -> None:
    """``n: 2`` is vLLM's alone (the MLX engine declares no ``n``): through the name it always
    reaches the cpu pool, never the mac pool that would refuse it; pinned to mac it is refused
    by the gateway, naming ``n``; the card says what each pool serves."""
    question = [{"role": "user", "content": "hi"}]
    before = requests_per_pool(mixed)
    with gateway_client(mixed) as client:
        for _ in range(8):
            reply = client.chat.completions.create(
                model=mixed.model, messages=question, max_tokens=4, n=2
            )
            assert len(reply.choices) == 2
        after = requests_per_pool(mixed)
        assert (after["cpu"] - before["cpu"], after["mac"] - before["mac"]) == (8, 0)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model=mixed.model,
                messages=question,
                max_tokens=4,
                n=2,
                extra_headers={"x-modelgrid-pool": "mac"},
            )
        assert (info.value.code, info.value.param) == ("unsupported_parameter", "n")
        pinned = client.chat.completions.with_raw_response.create(
            model=mixed.model,
            messages=question,
            max_tokens=4,
            extra_headers={"x-modelgrid-pool": "mac"},
        )
        assert pinned.status_code == 200
    assert requests_per_pool(mixed)["mac"] == after["mac"] + 1
    with urllib.request.urlopen(f"{mixed.url}/v1/models/{mixed.model}", timeout=10) as resp:
        pools = {p["name"]: set(p["capabilities"]) for p in json.load(resp)["pools"]}
    assert pools == {
        "cpu": set(engine_capabilities("vllm", tool_call_parser="hermes")),
        "mac": set(engine_capabilities("mlx")),
    }


def test_mixed_slowed_pool_gets_a_smaller_share(mixed: Mixed) -> None:
    base = burst(mixed)
    with throttled(mixed.mlx_pid, run_s=SLOW_RUN_S, period_s=SLOW_PERIOD_S):
        burst(mixed, SETTLE)
        slow = burst(mixed)

    def resumed() -> dict[str, int] | None:
        counts = burst(mixed, SETTLE)
        return counts if counts.get("mac") else None

    # Once resumed, the pool is measured again and gets traffic: not at the first request but
    # once its latency estimate (seconds, from the throttled answers) has decayed with its idle
    # time (balancer.IDLE_DECAY_S, 1 s): a few seconds, as many as the log of how slow its last
    # answers were. One fixed burst right after the resume missed that window on a loaded
    # machine (0 of 40 requests, twice), so the test waits for it, bounded.
    after = wait_for(resumed, timeout=30, what="the resumed mac pool getting traffic again")
    shares = [round(_share(c, "mac"), 3) for c in (base, slow, after)]
    print(f"\nmac share: normal {base}, slowed {slow}, resumed {after}; shares {shares}")
    assert base["mac"] > 0 and base["cpu"] > 0, base
    assert shares[1] < 0.5 * shares[0], shares  # the slowed pool's share at least halves


def test_mixed_stopped_pool_keeps_the_name_served(mixed: Mixed) -> None:
    os.kill(mixed.mlx_pid, signal.SIGTERM)
    started, statuses = time.monotonic(), []
    with gateway_client(mixed) as client:
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
        lambda: "mac" not in ready_pools(mixed), timeout=30, what="the mac pool out of the route"
    )
    assert ready_pools(mixed) == {"cpu"}
