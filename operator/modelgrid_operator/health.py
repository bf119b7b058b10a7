"""The operator's ``/healthz``: served for the whole life of the process, leader or not.

kopf's own liveness endpoint runs only while kopf does, and under leader election kopf runs
only in the replica that holds the Lease: the waiting replica would fail its liveness probe and
be restarted forever. This endpoint answers from the operator's event loop, so it says what a
liveness probe needs (the loop is alive) and, in its body, whether this replica leads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serve_health(
    port: int, leading: Callable[[], bool], host: str = "0.0.0.0"
) -> AsyncIterator[web.AppRunner]:
    """Serve ``GET /healthz`` -> 200 ``{"leading": <bool>}`` on ``host:port`` while in the block."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"leading": leading()})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield runner
    finally:
        await runner.cleanup()
