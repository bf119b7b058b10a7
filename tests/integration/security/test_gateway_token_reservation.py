"""A key with ``tokens_per_minute: 100`` sends 1,000 requests at once: tokens are reserved at
admission, so only what the allowance covers is admitted (all 1,000 were); each reservation is
settled to the real usage when its request ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from integration.security.gateway_attack import Backend, backends, bearer, chat, gateway
from local_backend import CHAT_PATH
from modelgrid_serving.gateway.auth import hash_key
from polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.security]

KEY = "sk-burst-0001"


async def test_a_thousand_concurrent_requests_cannot_overdraw_the_token_limit(
    tmp_path: Path,
) -> None:
    async with backends(Backend(hold=True, usage=(7, 3))) as (backend,):
        key = {
            "name": "burst",
            "sha256": hash_key(KEY),
            "tokens_per_minute": 100,
            "max_concurrent_requests": 2000,  # this test is about tokens, not concurrency
        }
        config = {
            "models": [{"name": "llama", "backends": [{"url": backend.url}]}],
            "auth": {"enabled": True, "keys": [key]},
        }
        async with (
            gateway(config, tmp_path) as gw,
            aiohttp.ClientSession(
                gw.url, headers=bearer(KEY), connector=aiohttp.TCPConnector(limit=0)
            ) as client,
        ):

            async def send(max_tokens: int) -> tuple[int, dict[str, str], dict[str, object]]:
                async with client.post(CHAT_PATH, json=chat("llama", max_tokens=max_tokens)) as r:
                    return r.status, dict(r.headers), await r.json()

            sent = [asyncio.create_task(send(20)) for _ in range(1000)]
            await eventually(
                lambda: sum(t.done() for t in sent) + len(backend.seen) >= 1000,
                timeout=30,
                what="every request of the burst admitted or refused",
            )
            admitted = len(backend.seen)
            refused = [t.result() for t in sent if t.done()]
            assert 1 <= admitted <= 100 // 20  # each reserved at least its max_tokens
            assert len(refused) == 1000 - admitted
            assert {(status, body["error"]["type"]) for status, _, body in refused} == {  # type: ignore[index]
                (429, "tokens")
            }
            backend.release.set()
            answers = await asyncio.gather(*sent)
            assert sum(status == 200 for status, _, _ in answers) == admitted
            # settled to the real usage (7 + 3 each): the rest of each reservation came back
            status, headers, _ = await send(1)
        assert status == 200
        reserved_now = 1 + 30  # this one: max_tokens plus the estimate of its ~120-byte body
        assert int(headers["x-ratelimit-remaining-tokens"]) >= 100 - 10 * admitted - reserved_now
