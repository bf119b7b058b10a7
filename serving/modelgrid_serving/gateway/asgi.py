"""Bare ASGI plumbing shared by the gateway's routes and its relay: types, headers, replies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..errors import error_response

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON: Headers = [(b"content-type", b"application/json")]

CANCEL_ON_DISCONNECT = "modelgrid.cancel_on_disconnect"
"""A server extension in ``scope["extensions"]``: ``register(callback)``. If the client goes away
before the response is complete, the server calls ``callback()`` and then cancels the task that
runs the application: what a task blocked on ``receive()`` would learn, without that task per
request. :mod:`.http_server` offers it; under another ASGI server the gateway watches
``receive()`` instead."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower case), if any."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def send_body(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> None:
    """Answer with ``body`` in one piece."""
    out = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: Send, exc: BaseException, headers: Iterable[tuple[bytes, bytes]] = ()
) -> int:
    """Answer with the OpenAI-shaped error for ``exc``; returns the status sent."""
    reply = error_response(exc)
    out = [*JSON, *headers, *((k.lower().encode(), v.encode()) for k, v in reply.headers.items())]
    await send_body(send, reply.status_code, json.dumps(reply.content()).encode(), out)
    return reply.status_code
