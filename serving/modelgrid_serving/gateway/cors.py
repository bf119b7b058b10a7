"""CORS: which web pages of other origins may call the gateway from a browser.

A browser sends ``Origin`` with every cross-origin request and, before any request that is not
"simple" (a JSON ``POST``, an ``Authorization`` header), an ``OPTIONS`` preflight. For an origin
the config allows, a preflight is answered 204 with the methods, headers and cache time
(``Access-Control-Max-Age``), and every answer (errors included: 401, 404, 429, so that a page
can read why) carries ``Access-Control-Allow-Origin`` with that origin and the headers a page may
read. An origin it does not allow gets no CORS header at all (a preflight: 403), so the browser
keeps the answer from the page. Requests are never refused for their ``Origin`` otherwise: CORS
protects the browser's user, not the gateway, and the console is served by the gateway itself
(same origin: no CORS needed), so it works under the strictest setting. Every answer to a request
with an ``Origin`` says ``Vary: Origin``.

Whether credentials (cookies, HTTP authentication the browser holds) may be sent is explicit:
``Access-Control-Allow-Credentials: true`` only where ``allow_credentials`` says so, never with
the origin ``*``. No allowed origin (the default in clusters): this layer is not installed and
costs nothing; a request without ``Origin`` (any non-browser client) pays one header look-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ClientError
from .asgi import Receive, Scope, Send, header, send_error
from .config import CORSConfig

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class OriginNotAllowed(ClientError, status=403, code="origin_not_allowed"):
    """403: a preflight from an origin the gateway's CORS settings do not allow."""


class OriginPolicy:
    """Which origins are allowed: exact ones, ``scheme://host:*`` (any port), or ``*``."""

    def __init__(self, origins: list[str]) -> None:
        patterns = [o.lower() for o in origins]
        self.any = "*" in patterns
        self._exact = frozenset(p for p in patterns if not p.endswith(":*"))
        self._any_port = frozenset(p[:-2] for p in patterns if p.endswith(":*"))

    def allows(self, origin: str) -> bool:
        """Whether a page of ``origin`` (as the browser sends it) may read the answers."""
        origin = origin.lower()
        if self.any or origin in self._exact or origin in self._any_port:
            return True
        base, colon, port = origin.rpartition(":")
        return bool(colon) and port.isdigit() and base in self._any_port


class CORS:
    """The CORS layer around the gateway's ASGI app.

    Args:
        app: The gateway.
        config: The ``cors`` section of the config file (read at start).
    """

    def __init__(self, app: ASGIApp, config: CORSConfig) -> None:
        self.app = app
        self.origins = OriginPolicy(config.allow_origins)
        self._credentials = config.allow_credentials
        self._methods = ", ".join(config.allow_methods).encode()
        self._any_header = "*" in config.allow_headers
        self._headers = ", ".join(h for h in config.allow_headers if h != "*").encode()
        self._expose = ", ".join(config.expose_headers).encode()
        self._max_age = str(config.max_age_s).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = self.origins.allows(origin.decode("latin-1"))
        if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method"):
            await self._preflight(scope, send, origin, allowed)
            return
        extra = self._answer_headers(origin) if allowed else [(b"vary", b"origin")]

        async def send_with_cors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _answer_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        out = [
            (b"access-control-allow-origin", origin),
            (b"vary", b"origin"),
            (b"access-control-expose-headers", self._expose),
        ]
        if self._credentials:
            out.append((b"access-control-allow-credentials", b"true"))
        return out

    async def _preflight(self, scope: Scope, send: Send, origin: bytes, allowed: bool) -> None:
        if not allowed:
            await send_error(
                send,
                OriginNotAllowed(
                    f"The origin {origin.decode('latin-1')!r} is not allowed to call this "
                    "gateway from a browser (cors.allow_origins in its config)."
                ),
                [(b"vary", b"origin")],
            )
            return
        requested = header(scope, b"access-control-request-headers")
        allow_headers = self._headers
        if self._any_header and requested:
            allow_headers = b", ".join(h for h in (allow_headers, requested) if h)
        headers = [
            (b"access-control-allow-origin", origin),
            (b"vary", b"origin"),
            (b"access-control-allow-methods", self._methods),
            (b"access-control-max-age", self._max_age),
        ]
        if allow_headers:
            headers.append((b"access-control-allow-headers", allow_headers))
        if self._credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def with_cors(app: ASGIApp, config: CORSConfig) -> ASGIApp:
    """``app`` behind the CORS layer, or ``app`` itself when no origin is allowed."""
    return CORS(app, config) if config.allow_origins else app
