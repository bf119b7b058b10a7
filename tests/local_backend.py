"""Small aiohttp servers on free local ports: the test doubles of an engine or a replica that the
gateway and engine tests talk to over real HTTP (never part of the product).

One way to start and stop them, so every test binds the same way (127.0.0.1, a port the system
picks) and none forgets the cleanup that frees its port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.typedefs import Handler

CHAT_PATH = "/v1/chat/completions"


def chat_backend(answer: Handler) -> web.Application:
    """An OpenAI-shaped backend whose chat completions route is ``answer``."""
    app = web.Application()
    app.router.add_post(CHAT_PATH, answer)
    return app


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free local port until the block ends; yields its base URL
    (``http://127.0.0.1:<port>``, no path)."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
