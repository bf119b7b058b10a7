"""Backend health: static backends are probed at ``GET <url without /v1>/health``; a failing one
leaves the routing table until it answers again (its model answers 503 when it has no other).

Kubernetes backends are not probed: the InferenceModel's status is their source of truth.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from .catalog import Catalog

logger = logging.getLogger(__name__)

PROBE_FAILURES_TO_DOWN = 2
"""Failed health probes in a row that take a backend that was up out of the table."""


class HealthProbe:
    """Probes the static backends every ``interval_s`` and reports the down ones to the catalog.

    A backend that was up leaves after two failed probes in a row (one slow answer on a busy
    machine is not an outage); one never seen up leaves at its first failure.

    Args:
        catalog: Where the static backends are read and the down ones reported.
        interval_s: Seconds between rounds (each probe times out after the interval, between 1
            and 5 s).
    """

    def __init__(self, catalog: Catalog, interval_s: float) -> None:
        self.catalog = catalog
        self.interval_s = interval_s

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Probe until cancelled."""
        interval = self.interval_s
        timeout = aiohttp.ClientTimeout(total=min(max(interval, 1.0), 5.0))
        failures: dict[str, int] = {}
        seen_up: set[str] = set()

        async def probe(url: str) -> bool:
            root = url.removesuffix("/v1")
            try:
                async with session.get(root + "/health", timeout=timeout) as resp:
                    return resp.status == 200
            except (TimeoutError, aiohttp.ClientError):
                return False

        while True:
            urls = sorted({b.url for e in self.catalog.entries("static") for b in e.backends})
            results = await asyncio.gather(*(probe(u) for u in urls))
            for url, ok in zip(urls, results, strict=True):
                failures[url] = 0 if ok else failures.get(url, 0) + 1
                if ok:
                    seen_up.add(url)
            down = frozenset(
                u for u in urls if failures[u] >= (PROBE_FAILURES_TO_DOWN if u in seen_up else 1)
            )
            was = self.catalog.down
            if down != was:
                for url in down - was:
                    logger.warning("backend %s is down (health probe)", url)
                for url in was - down:
                    logger.info("backend %s is up again", url)
                self.catalog.set_down(down)
            await asyncio.sleep(interval)
