"""The gateway as a hostile client meets it: the real application on its real HTTP server,
in-process on a local port, in front of small OpenAI-shaped backends that count what reaches
them (test doubles of an engine, never part of the product)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web
from local_backend import chat_backend, served
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.config import load_config
from modelgrid_serving.gateway.server import build_servers
from modelgrid_serving.gateway.state import GatewayState


@dataclass
class Backend:
    """An OpenAI-shaped backend that answers every chat or completions request with ``usage``,
    holding each until :attr:`release` is set (when ``hold``)."""

    usage: tuple[int, int] = (7, 3)
    hold: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def _answer(self, request: web.Request) -> web.Response:
        self.seen.append(await request.json())
        if self.hold:
            await self.release.wait()
        prompt, completion = self.usage
        body = {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": self.seen[-1].get("model"),
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        return web.json_response(body)


@asynccontextmanager
async def backends(*specs: Backend) -> AsyncIterator[tuple[Backend, ...]]:
    """Serve each backend on a free local port (its ``url`` ends in ``/v1``)."""
    async with AsyncExitStack() as started:
        for spec in specs:
            app = chat_backend(spec._answer)
            app.router.add_post("/v1/completions", spec._answer)
            spec.url = f"{await started.enter_async_context(served(app))}/v1"
            started.callback(spec.release.set)  # a held request is let go before its server stops
        yield specs


@dataclass
class Running:
    """A gateway serving on local ports."""

    app: Gateway
    port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> GatewayState:
        return self.app.state


@asynccontextmanager
async def gateway(config: dict[str, Any], tmp_path: Path) -> AsyncIterator[Running]:
    """The gateway of ``config`` (written to a file, as users run it; its keys file and config
    are watched), on its API and metrics servers as :func:`~.server.serve` builds them."""
    config.setdefault("limits", {}).setdefault("health_interval_s", 0)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    app = Gateway(GatewayState(load_config(path), config_path=path))
    await app.state.startup()
    api, metrics = build_servers(app)
    try:
        await api.start("127.0.0.1", 0)
        await metrics.start("127.0.0.1", 0)
        yield Running(app, api.port, metrics.port)
    finally:
        await api.stop(grace_s=0.5)
        await metrics.stop(grace_s=0)
        await app.state.shutdown()


def rewrite(path: Path, text: str) -> None:
    """Replace a watched file, with a modification time the watcher cannot have seen (the same
    second's write would not change it on every file system)."""
    stamp = path.stat().st_mtime + 10 if path.exists() else None
    path.write_text(text)
    if stamp is not None:
        os.utime(path, (stamp, stamp))


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def error_of(resp: httpx.Response) -> dict[str, Any]:
    """The OpenAI error object of a refusal (every field present)."""
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response with a content-length (what the gateway's refusals
    have), read from a raw socket within 10 s."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.split(b"\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length")
    )
    return int(lines[0].split()[1]), await asyncio.wait_for(reader.readexactly(length), 10)


def json_body(raw: bytes) -> dict[str, Any]:
    return json.loads(raw)
