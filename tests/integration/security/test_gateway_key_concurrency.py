"""One key opens many requests at once to hold every in-flight slot of every backend: the key's
bound on requests in flight refuses the rest with an OpenAI-shaped 429, other keys are served,
and a slot comes back when a request ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from integration.security.gateway_attack import (
    Backend,
    backends,
    bearer,
    chat,
    error_of,
    gateway,
)
from local_backend import CHAT_PATH
from modelgrid_serving.gateway.auth import hash_key
from polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.security]

GREEDY, OTHER = "sk-greedy-0001", "sk-other-0002"


async def test_one_key_cannot_take_more_than_its_concurrent_requests(tmp_path: Path) -> None:
    async with backends(Backend(hold=True)) as (backend,):
        config = {
            "models": [{"name": "llama", "backends": [{"url": backend.url}]}],
            "auth": {
                "enabled": True,
                "keys": [
                    {"name": "greedy", "sha256": hash_key(GREEDY)},
                    {"name": "other", "sha256": hash_key(OTHER), "max_concurrent_requests": 1},
                ],
            },
            "limits": {"max_concurrent_per_key": 3},
        }
        async with (
            gateway(config, tmp_path) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=30, limits=httpx.Limits()) as client,
        ):
            held = [
                asyncio.create_task(
                    client.post(CHAT_PATH, json=chat("llama"), headers=bearer(GREEDY))
                )
                for _ in range(3)
            ]
            await eventually(lambda: len(backend.seen) == 3, what="three held at the backend")
            refused = await client.post(CHAT_PATH, json=chat("llama"), headers=bearer(GREEDY))
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            assert error_of(refused)["code"] == "concurrency_limit_exceeded"
            other = asyncio.create_task(
                client.post(CHAT_PATH, json=chat("llama"), headers=bearer(OTHER))
            )
            # the other key is admitted beside the greedy one
            await eventually(lambda: len(backend.seen) == 4, what="the other key's request")
            backend.release.set()
            assert [r.status_code for r in await asyncio.gather(*held, other)] == [200] * 4
            again = await client.post(CHAT_PATH, json=chat("llama"), headers=bearer(GREEDY))
        assert again.status_code == 200  # the slots came back when the requests ended
