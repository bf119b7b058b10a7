"""Per-key limits shared by every gateway process: each reads what the others consumed.

Behind a Service, one client's keep-alive connection sticks to one gateway replica, so
dividing a key's limit by the replica count would starve it; without sharing, N replicas would
grant N times the limit. Instead each process serves its running totals per key
(``GET /internal/usage``) and polls its peers' every ``interval_s``; the growth since the last
poll is taken out of its own buckets (:meth:`~.limits.RateLimiter.absorb`). The limit then
holds across replicas, overshooting by at most what the key can spend in one interval. No
store to run: peers are listed in the config or found by DNS (a headless Service's name
resolves to every ready gateway pod).

Totals are per process instance (a random id), so a restarted peer starts a new series instead
of looking like negative use, and the first answer of a peer only sets its baseline: what it
consumed before we met it has refilled or will be seen as it grows.

The same answer carries the process's live figures for the console (:meth:`.LiveFigures.summaries`),
so that a console page shows every replica's traffic, not the one replica it reached. What each
round heard from each peer (its instance, when, or why not) is kept for ``GET /v1/peers``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .config import PeersConfig
from .limits import RateLimiter
from .live import LiveFigures

logger = logging.getLogger(__name__)

USAGE_PATH = "/internal/usage"
PEER_SECRET_ENV = "MODELGRID_GATEWAY_PEER_SECRET"
"""The shared secret peers send as ``Authorization: Bearer`` (usage counts are not public)."""
PEER_SECRET_FILE_ENV = "MODELGRID_GATEWAY_PEER_SECRET_FILE"
"""A file holding that secret instead (a mounted Secret: it stays out of the environment)."""


def read_peer_secret(environ: Mapping[str, str]) -> str | None:
    """The peers' shared secret: from the file ``$MODELGRID_GATEWAY_PEER_SECRET_FILE`` names,
    else ``$MODELGRID_GATEWAY_PEER_SECRET``; None when neither is set.

    A file keeps the secret out of the process environment, which child processes inherit and
    crash reports and ``/proc/<pid>/environ`` show. Surrounding whitespace (the newline of a file
    written by hand) is not part of it. A named file that cannot be read, or holds nothing, is an
    error: the gateway must not start without the secret it was told to use.
    """
    path = environ.get(PEER_SECRET_FILE_ENV)
    if not path:
        return environ.get(PEER_SECRET_ENV) or None
    try:
        secret = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(
            f"{PEER_SECRET_FILE_ENV}={path}: cannot read it ({exc.strerror})"
        ) from None
    if not secret:
        raise ValueError(f"{PEER_SECRET_FILE_ENV}={path}: the file is empty")
    return secret


@dataclass(frozen=True)
class PeerContact:
    """What this process last heard from one peer address."""

    url: str
    instance: str | None = None
    """The peer's process instance, once it answered."""
    last_contact: float | None = None
    """When it last answered (seconds since the epoch); None: never."""
    error: str | None = None
    """Why the latest round got no usable answer; None: it answered."""

    @property
    def healthy(self) -> bool:
        """The latest round heard from it."""
        return self.error is None and self.last_contact is not None

    def view(self, now: float) -> dict[str, Any]:
        """As ``GET /v1/peers`` shows it."""
        ago = None if self.last_contact is None else round(max(now - self.last_contact, 0.0), 3)
        return {
            "url": self.url,
            "instance": self.instance,
            "healthy": self.healthy,
            "last_contact": self.last_contact,
            "last_contact_s_ago": ago,
            "error": self.error,
        }


class PeerSync:
    """Polls the peers' usage and charges it to the local limiter.

    Args:
        limiter: This process's buckets.
        config: Where the peers are and how often to poll.
        secret: Sent to peers, and required from them by :meth:`usage_body`'s caller.
        live: This process's live figures, offered to the peers (none: not offered).
    """

    def __init__(
        self,
        limiter: RateLimiter,
        config: PeersConfig,
        secret: str | None,
        live: LiveFigures | None = None,
    ) -> None:
        self.limiter = limiter
        self.config = config
        self.secret = secret
        self.live = live
        self.instance = secrets.token_hex(8)
        self._seen: dict[str, dict[str, list[int]]] = {}
        self._live: dict[str, dict[str, Any]] = {}
        """Peer instance -> its latest live summaries, by model."""
        self.contacts: dict[str, PeerContact] = {}
        """Peer URL -> what the latest rounds heard from it (this process's own URL excluded)."""

    def usage_body(self) -> dict[str, Any]:
        """What ``GET /internal/usage`` answers: this instance, its running totals and its live
        figures."""
        body: dict[str, Any] = {"instance": self.instance, "keys": self.limiter.consumed}
        if self.live is not None:
            body["live"] = self.live.summaries(now=time.monotonic())
        return body

    def peers_live(self, model: str) -> list[Any]:
        """The live summaries of ``model`` that the peers heard from last sent."""
        return [models[model] for models in self._live.values() if model in models]

    def authorized(self, authorization: bytes | None) -> bool:
        """Whether a usage request carries the peer secret (any request, when there is none)."""
        if self.secret is None:
            return True
        expected = f"Bearer {self.secret}".encode()
        return authorization is not None and secrets.compare_digest(authorization, expected)

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Poll forever (cancel to stop); a peer that does not answer is skipped this round."""
        while True:
            try:
                urls = await self.peer_urls()
                answers = await asyncio.gather(
                    *(self._fetch(session, url) for url in urls), return_exceptions=True
                )
                self.observe(urls, answers, now=time.time())
            except Exception:  # keep syncing; limits stay local meanwhile (logged)
                logger.exception("peer sync failed")
            await asyncio.sleep(self.config.interval_s)

    def observe(self, urls: Sequence[str], answers: Sequence[Any], *, now: float) -> None:
        """Take one round's answers (an exception: no answer): charge their growth, note each
        peer's contact, and forget the peers that did not answer (gone, or restarted under a
        new id: one that comes back starts from a new baseline)."""
        heard: set[str] = set()
        contacts: dict[str, PeerContact] = {}
        for url, answer in zip(urls, answers, strict=True):
            before = self.contacts.get(url) or PeerContact(url)
            if isinstance(answer, BaseException):
                logger.debug("peer %s: %r", url, answer)
                error = f"{type(answer).__name__}: {answer}".rstrip(": ")
                contacts[url] = PeerContact(url, before.instance, before.last_contact, error)
            elif (instance := self.merge(answer)) is not None:
                heard.add(instance)
                contacts[url] = PeerContact(url, instance, now)
            elif isinstance(answer, dict) and answer.get("instance") == self.instance:
                continue  # ourselves: DNS lists every pod
            else:
                contacts[url] = PeerContact(
                    url, before.instance, before.last_contact, "not a gateway's answer"
                )
        self.contacts = contacts
        self._seen = {i: totals for i, totals in self._seen.items() if i in heard}
        self._live = {i: live for i, live in self._live.items() if i in heard}

    def peers_body(self, now: float) -> dict[str, Any]:
        """What ``GET /v1/peers`` answers: this instance and each peer's latest contact."""
        return {
            "object": "list",
            "instance": self.instance,
            "data": [c.view(now) for _, c in sorted(self.contacts.items())],
        }

    async def peer_urls(self) -> list[str]:
        """The configured URLs, plus ``http://ADDRESS:PORT`` for each address of ``dns``."""
        urls = list(self.config.urls)
        if self.config.dns:
            host, _, port = self.config.dns.rpartition(":")
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except OSError as exc:  # no ready peer yet, or DNS down: local limits meanwhile
                logger.debug("peers %s: %s", self.config.dns, exc)
                infos = []
            for address in sorted({info[4][0] for info in infos}):
                shown = f"[{address}]" if ":" in address else address
                urls.append(f"http://{shown}:{port}")
        return urls

    def merge(self, answer: Any) -> str | None:
        """Charge the growth of one peer's totals since its previous answer.

        Returns:
            The peer's instance id; None for our own answer or one that is not a gateway's.
        """
        if not isinstance(answer, dict):
            return None
        instance, keys = answer.get("instance"), answer.get("keys")
        if not isinstance(instance, str) or instance == self.instance or not isinstance(keys, dict):
            return None  # ourselves (DNS lists every pod), or not a gateway
        live = answer.get("live")
        self._live[instance] = live if isinstance(live, dict) else {}
        previous = self._seen.get(instance)
        current = {
            name: [int(totals[0]), int(totals[1])]
            for name, totals in keys.items()
            if isinstance(totals, list) and len(totals) == 2
        }
        self._seen[instance] = current
        if previous is not None:  # at first contact the totals are a baseline, not news
            for name, (requests, tokens) in current.items():
                before = previous.get(name, [0, 0])
                self.limiter.absorb(name, requests - before[0], tokens - before[1])
        return instance

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> Any:
        headers = {"authorization": f"Bearer {self.secret}"} if self.secret else None
        timeout = aiohttp.ClientTimeout(total=max(self.config.interval_s, 0.5))
        async with session.get(url + USAGE_PATH, headers=headers, timeout=timeout) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)
