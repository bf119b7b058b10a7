"""One proxied request from admission to its end: what the client sent, what its key was
admitted with, what the relay saw on the way, and the outcome the sink records.

One object a request, passed along the proxy path (:mod:`.app` admits it, :mod:`.relay` relays
it, :mod:`.sink` accounts for it): the parts that handle it are built once per process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .asgi import Receive, Scope
from .auth import KeyPolicy
from .metrics import NO_POOL


@dataclass(slots=True, eq=False)
class Exchange:
    """A request that passed its checks, and what became of it."""

    scope: Scope
    route: str
    """The route label: ``chat``, ``completions`` or ``embeddings``."""
    model: str
    """The canonical model name it resolved to."""
    body: bytes
    payload: dict[str, Any]
    """``body`` parsed."""
    headers: list[tuple[bytes, bytes]]
    """Added to the answer, whatever it is (the key's ``x-ratelimit-*``)."""
    policy: KeyPolicy
    reserved: int
    """Tokens reserved at admission, settled to the real usage when it ends (:mod:`.sink`)."""
    started: float
    """``time.perf_counter()`` when it arrived."""

    # What the relay sees on the way.
    client_gone: bool = False
    done: bool = False
    pool: str = NO_POOL
    """The pool of the backend that took it (the last one tried)."""
    events: int = 0
    """Streamed events that carry tokens."""
    usage: tuple[int, int] | None = None
    """``(prompt_tokens, completion_tokens)`` as the backend reported them."""
    ttft_s: float | None = None
    """Seconds from the request to the first streamed event (streams only)."""

    # The outcome, set by the sink when it ends, before its recorders read it (unset until
    # then: nothing is stored per request that only a finished one needs).
    status: int = field(init=False, repr=False)
    duration_s: float = field(init=False, repr=False)
    """From the first byte of the request to the end of the answer."""
    ended: float = field(init=False, repr=False)
    """``time.monotonic()`` at its end."""
    prompt_tokens: int = field(init=False, repr=False)
    completion_tokens: int = field(init=False, repr=False)
    """Usage as the backend reported it; else the prompt's estimate and one token an event."""

    def client_left(self) -> None:
        """The client went away before its answer was complete. Its task is cancelled next (by
        the server, or :meth:`watch_disconnect`), which closes the upstream request: the engine
        stops generating for nobody."""
        if not self.done:
            self.client_gone = True

    async def watch_disconnect(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` once ``receive()`` says the client disconnected (for servers without
        the :data:`~.asgi.CANCEL_ON_DISCONNECT` extension)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.done:
            self.client_left()
            task.cancel()
