"""Blocking HTTP calls for synchronous callers, on aiohttp (the product's one HTTP client
library besides the gateway's own proxy client, :mod:`.gateway.upstream`).

``modelgrid up`` waits for its gateway and MLX servers and sends a warm-up request from plain
synchronous code; ``modelgrid load``, ``unload`` and ``models`` call a gateway's admin API. Each call here runs aiohttp on a private event loop of its own, so the caller
needs no loop and a second library (httpx, urllib) is not needed for these few calls. Not for a
thread whose event loop is running: async code uses aiohttp directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp


class NoAnswer(Exception):
    """The server gave no HTTP answer: refused, reset, unresolved, or not within the timeout."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, read whole."""

    status: int
    text: str


def get(url: str, *, timeout_s: float, headers: dict[str, str] | None = None) -> Reply:
    """``GET url``.

    Raises:
        NoAnswer: no HTTP answer within ``timeout_s``.
    """
    return _run(_request("GET", url, None, timeout_s, headers))


def answers_ok(url: str, *, timeout_s: float) -> bool:
    """Whether ``GET url`` answers 200 within ``timeout_s``: the probe of a start that waits
    for a server (the gateway in front, an MLX server) to come up."""
    try:
        return get(url, timeout_s=timeout_s).status == 200
    except NoAnswer:
        return False


def delete(url: str, *, timeout_s: float, headers: dict[str, str] | None = None) -> Reply:
    """``DELETE url``.

    Raises:
        NoAnswer: no HTTP answer within ``timeout_s``.
    """
    return _run(_request("DELETE", url, None, timeout_s, headers))


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> Reply:
    """``POST url`` with ``payload`` as its JSON body.

    Raises:
        NoAnswer: no HTTP answer within ``timeout_s``.
    """
    return _run(_request("POST", url, payload, timeout_s, headers))


def _run(call: Coroutine[Any, Any, Reply]) -> Reply:
    with asyncio.Runner() as runner:
        return runner.run(call)


async def _request(
    method: str,
    url: str,
    payload: dict[str, Any] | None,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> Reply:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, json=payload, headers=headers) as resp,
        ):
            return Reply(resp.status, await resp.text(errors="replace"))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise NoAnswer(f"{method} {url}: {exc!r}") from exc
