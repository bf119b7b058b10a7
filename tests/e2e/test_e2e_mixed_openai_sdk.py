"""The whole path as a user takes it: ``modelgrid up examples/mixed-tiny.yaml`` (one model name
over a vLLM CPU pool and an MLX CPU pool, the gateway in front), spoken to with the OpenAI SDK.
The models are listed, chats and streams are answered, and both pools answer under the one name
(the gateway's own per-pool count, ``/v1/stats``, says which pool took each request)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from mixed_support import CONCURRENCY, REQUESTS, Mixed, burst, gateway_client, requests_per_pool

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "hi"}]


def test_e2e_one_name_is_listed_once_and_chats_are_answered_by_both_pools(mixed: Mixed) -> None:
    assert {name: engine for name, (engine, _) in mixed.pools.items()} == {
        "cpu": "vllm",
        "mac": "mlx",
    }
    with gateway_client(mixed) as client:
        listed = [m.id for m in client.models.list()]
    assert listed.count(mixed.model) == 1
    counts = burst(mixed)
    print(f"\nsplit over {REQUESTS} requests: {counts}")
    assert sum(counts.values()) == REQUESTS
    assert counts["cpu"] > 0 and counts["mac"] > 0, counts


def test_e2e_streams_are_answered_by_both_pools(mixed: Mixed) -> None:
    with gateway_client(mixed) as client:

        def one(_: int) -> tuple[str, str | None, int]:
            stream = client.chat.completions.create(
                model=mixed.model,
                messages=MESSAGES,
                max_tokens=16,
                stream=True,
                stream_options={"include_usage": True},
                # The tiny model has random weights: unpinned, it may sample EOS first and
                # answer an empty (and correct) "stop"; CI once drew exactly that.
                extra_body={"ignore_eos": True},
            )
            text, finish, completion_tokens = "", None, 0
            for chunk in stream:
                assert chunk.model == mixed.model
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
                if chunk.usage is not None:
                    completion_tokens = chunk.usage.completion_tokens
            return text, finish, completion_tokens

        before = requests_per_pool(mixed)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            streams = list(pool.map(one, range(REQUESTS)))
    after = requests_per_pool(mixed)
    counts = {name: after[name] - before.get(name, 0) for name in after}
    print(f"\nsplit over {REQUESTS} streams: {counts}")
    for text, finish, completion_tokens in streams:
        assert text and finish == "length", (text, finish)
        assert completion_tokens == 16  # the usage chunk closes every stream
    assert sum(counts.values()) == REQUESTS
    assert counts["cpu"] > 0 and counts["mac"] > 0, counts
