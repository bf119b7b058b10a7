"""The gateway's state: routing table, keys, load, limits, metrics; and what keeps them current.

Sources (the static file, the Kubernetes watch) and the health probe report here; every change
rebuilds the routing table and swaps it whole, so a request sees one consistent table. Watch
threads hop to the event loop (``call_soon_threadsafe``) before touching anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import aiohttp

from .auth import KeyPolicy, KeyRing
from .balancer import Balancer
from .config import GatewayConfig, KeyConfig, check_unique_keys, load_config, load_keys
from .limits import RateLimiter
from .live import LiveFigures
from .metrics import GatewayMetrics
from .peers import PEER_SECRET_ENV, PEER_SECRET_FILE_ENV, PeerSync, read_peer_secret
from .routing import ModelEntry, Route, RoutingTable, allowed_routes, build_table
from .sources import NamespacedModels, keys_from_secret, static_entries
from .upstream import Upstream

logger = logging.getLogger(__name__)

PROBE_FAILURES_TO_DOWN = 2
"""Failed health probes in a row that take a backend that was up out of the table."""


@dataclass(slots=True)
class ModelCounters:
    """What ``/v1/stats`` reports per model."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GatewayState:
    """Everything the routes read, and the tasks and threads that keep it current.

    Args:
        config: The static configuration (models, keys, limits).
        config_path: The file it came from; watched for changes (static models and keys).
        kubernetes: Also route to InferenceModels found by a Kubernetes watch.
        namespaces: Watch these namespaces only (empty: all).
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        config_path: Path | None = None,
        kubernetes: bool = False,
        namespaces: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.limits = config.limits
        self._config_path = config_path
        self._kubernetes = kubernetes
        self._namespaces = tuple(namespaces)
        self.metrics = GatewayMetrics()
        self.balancer = Balancer(max_in_flight=config.limits.max_in_flight_per_backend)
        self.limiter = RateLimiter()
        self.live = LiveFigures()
        """The console's live figures, fed by every relayed request."""
        peers = config.limits.peers
        self.peers = (
            PeerSync(self.limiter, peers, read_peer_secret(os.environ), self.live)
            if peers.enabled
            else None
        )
        self.keys = KeyRing(
            (), enabled=config.auth.enabled, max_concurrent=config.limits.max_concurrent_per_key
        )
        self.table = RoutingTable()
        self.counters: dict[str, ModelCounters] = {}
        self._entries: dict[str, list[ModelEntry]] = {}
        self._down: set[str] = set()
        self._key_sources: dict[str, list[KeyConfig]] = {}
        self._allowed: dict[str, dict[str, Route]] = {}
        """key name -> what it may use (names are unique), for the current table and keys."""
        self.pending_sources: set[str] = set()
        self.session: aiohttp.ClientSession | None = None
        """For the gateway's own calls: health probes, GPU info, peers."""
        self.upstream: Upstream | None = None
        """For proxied requests (the hot path)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[Any] = []
        self._started = time.time()
        self._apply_static(config, initial=True)

    # ---- table and key updates -----------------------------------------------------------

    def _apply_static(self, config: GatewayConfig, *, initial: bool = False) -> None:
        """Take a (re)loaded config file. A keys file that cannot be used stops the gateway at
        start (``initial``) and is logged and ignored on reload (the previous keys stay)."""
        self.config = config
        self._entries["static"] = static_entries(config, created=int(self._started))
        self._set_keys("inline", list(config.auth.keys))
        if config.auth.keys_file is not None:
            try:
                self._set_keys("file", load_keys(config.auth.keys_file.read_text()), strict=True)
            except (OSError, ValueError) as exc:  # ConfigError: its message shows no value
                if initial:
                    raise
                logger.error(
                    "keys file %s: %s; keeping the previous keys", config.auth.keys_file, exc
                )
        self._rebuild()

    def set_entries(self, source: str, entries: list[ModelEntry]) -> None:
        """Replace one source's models and rebuild the table (event loop thread only)."""
        self._entries[source] = entries
        self.pending_sources.discard(source)
        self._rebuild()

    def _set_keys(self, source: str, keys: list[KeyConfig], *, strict: bool = False) -> None:
        """Replace one source's keys. Names must stay unique across every source: a source
        that would repeat one is refused (``strict``: raised, else logged), and the previous
        keys stay.

        Raises:
            ValueError: ``strict`` and a key name or hash is already another source's.
        """
        sources = {**self._key_sources, source: keys}
        try:
            check_unique_keys(list(chain(*sources.values())))
        except ValueError as exc:
            if strict:
                raise
            logger.error("keys from %s: %s; keeping the previous keys", source, exc)
            return
        self._key_sources = sources
        self.pending_sources.discard(source)
        self.keys = KeyRing(
            chain(*sources.values()),
            enabled=self.config.auth.enabled,
            max_concurrent=self.limits.max_concurrent_per_key,
        )
        self._allowed.clear()

    def _rebuild(self) -> None:
        table = build_table(chain(*self._entries.values()), down=frozenset(self._down))
        self.table = table
        self._allowed.clear()
        urls = {b.url for e in table.models.values() for b in e.backends}
        self.balancer.forget(urls)
        for name, route in table.routes.items():
            if name == route.model:
                self.metrics.backends_ready.labels(name).set(len(route.backends))

    def allowed_for(self, policy: KeyPolicy) -> Mapping[str, Route] | None:
        """What ``policy`` may use in the current table (canonical model -> its route for the
        key); ``None``: everything. Computed once per key and table."""
        if not policy.restricted:
            return None
        allowed = self._allowed.get(policy.name)
        if allowed is None:
            allowed = self._allowed[policy.name] = allowed_routes(
                self.table, policy.models, policy.namespaces
            )
        return allowed

    # ---- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open the client pool, start the sources, the health probe and the file watch."""
        if self.peers is not None and self.keys.enabled and self.peers.secret is None:
            raise ValueError(
                f"limits.peers: set {PEER_SECRET_FILE_ENV} or {PEER_SECRET_ENV} (the same "
                "secret on every gateway) when auth is on; usage counts per key are not for "
                "everyone to read"
            )
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=10),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.limits.connect_timeout_s,
                sock_read=self.limits.read_timeout_s,
            ),
        )
        self.upstream = Upstream(
            connect_timeout_s=self.limits.connect_timeout_s,
            read_timeout_s=self.limits.read_timeout_s,
        )
        loop = asyncio.get_running_loop()
        if self.peers is not None:
            self._tasks.append(asyncio.create_task(self.peers.run(self.session)))
        if self._kubernetes:
            self._start_kubernetes(loop)
        if self.limits.health_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._probe_loop()))
        if self._config_path is not None:
            self._tasks.append(asyncio.create_task(self._watch_files()))

    def _start_kubernetes(self, loop: asyncio.AbstractEventLoop) -> None:
        from .sources import current_namespace, kubernetes_watchers

        auth = self.config.auth
        secret = None
        if auth.secret_name:
            # the gateway's own namespace, not the watched one: that is where its chart puts it
            secret = (auth.secret_namespace or current_namespace(), auth.secret_name)
            self.pending_sources.add("secret")

        watched = NamespacedModels()  # name claims are resolved across every namespace

        def on_models_of(source: str) -> Callable[[list[dict[str, Any]]], None]:
            def on_models(objs: list[dict[str, Any]]) -> None:
                entries = watched.report(source, objs)  # parse in the thread, swap in loop

                def swap() -> None:  # in one callback: no request sees half of the change
                    for each, listed in entries.items():
                        self.set_entries(each, listed)

                loop.call_soon_threadsafe(swap)

            return on_models

        # One watch per namespace, each its own source, so one namespace's list never
        # replaces another's.
        namespaces: tuple[str | None, ...] = self._namespaces or (None,)
        models = {f"kubernetes:{ns or '*'}": ns for ns in namespaces}
        self.pending_sources.update(models)

        def on_secret(objs: list[dict[str, Any]]) -> None:
            try:
                keys = [k for o in objs for k in keys_from_secret(o, auth.secret_key)]
            except Exception as exc:  # noqa: BLE001 - a bad Secret must not stop the watch
                logger.error("keys Secret: %s; keeping the previous keys", exc)
                return
            loop.call_soon_threadsafe(self._set_keys, "secret", keys)

        self._watchers = kubernetes_watchers(
            namespaces={ns: on_models_of(source) for source, ns in models.items()},
            secret=secret,
            on_secret=on_secret,
        )
        for watcher in self._watchers:
            watcher.start()

    async def shutdown(self) -> None:
        """Stop everything ``startup`` started."""
        for watcher in self._watchers:
            watcher.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        if self.upstream is not None:
            self.upstream.close()

    async def _probe_loop(self) -> None:
        """Probe every static backend's ``/health``; a failing one leaves the table until it
        answers again (its model answers 503 when it has no other).

        A backend that was up leaves after two failed probes in a row (one slow answer on a
        busy machine is not an outage); one never seen up leaves at its first failure.
        """
        assert self.session is not None
        interval = self.limits.health_interval_s
        timeout = aiohttp.ClientTimeout(total=min(max(interval, 1.0), 5.0))
        failures: dict[str, int] = {}
        seen_up: set[str] = set()

        async def probe(url: str) -> bool:
            root = url.removesuffix("/v1")
            try:
                async with self.session.get(root + "/health", timeout=timeout) as resp:  # type: ignore[union-attr]
                    return resp.status == 200
            except (TimeoutError, aiohttp.ClientError):
                return False

        while True:
            urls = sorted({b.url for e in self._entries.get("static", []) for b in e.backends})
            results = await asyncio.gather(*(probe(u) for u in urls))
            for url, ok in zip(urls, results, strict=True):
                failures[url] = 0 if ok else failures.get(url, 0) + 1
                if ok:
                    seen_up.add(url)
            down = {
                u for u in urls if failures[u] >= (PROBE_FAILURES_TO_DOWN if u in seen_up else 1)
            }
            if down != self._down:
                for url in down - self._down:
                    logger.warning("backend %s is down (health probe)", url)
                for url in self._down - down:
                    logger.info("backend %s is up again", url)
                self._down = down
                self._rebuild()
            await asyncio.sleep(interval)

    async def _watch_files(self) -> None:
        """Reload the config file (and the keys file) when they change."""

        def stamp() -> tuple[float, ...]:
            paths = [self._config_path, self.config.auth.keys_file]
            return tuple(p.stat().st_mtime if p and p.exists() else 0.0 for p in paths)

        seen = stamp()
        while True:
            await asyncio.sleep(1.0)
            now = stamp()
            if now == seen:
                continue
            seen = now
            try:
                config = load_config(self._config_path)
            except Exception as exc:  # noqa: BLE001 - keep serving the last good config
                logger.error("config %s: %s; keeping the previous config", self._config_path, exc)
                continue
            self.limits = config.limits.model_copy(
                update={"max_in_flight_per_backend": self.limits.max_in_flight_per_backend}
            )
            self._apply_static(config)
            logger.info("config reloaded: %d static models", len(config.models))

    def stats(self, allowed: Mapping[str, Route] | None = None) -> dict[str, Any]:
        """``/v1/stats``: per model, its pools, backends, load and what it served.

        Args:
            allowed: What the caller's key may use (:meth:`allowed_for`); ``None``: everything.
                A model allowed by namespace shows only the backends of those namespaces.
        """
        models = []
        for name, entry in self.table.models.items():
            route = self.table.routes[name]
            shown = entry.backends
            if allowed is not None:
                own = allowed.get(name)
                if own is None:
                    continue
                if own is not route:
                    shown = own.backends
            counters = self.counters.get(name, ModelCounters())
            backends = []
            for i, backend in enumerate(shown):
                state = self.balancer.state(backend.url)
                backends.append(
                    {
                        "backend": f"{backend.pool}/{i}",
                        "ready": backend in route.backends,
                        "in_flight": state.outstanding,
                        "ewma_latency_ms": round(state.ewma_s * 1000, 3),
                        "requests": state.requests,
                        "errors": state.errors,
                    }
                )
            models.append(
                {
                    "id": name,
                    "aliases": list(entry.aliases),
                    "source": entry.source,
                    "ready": bool(route.backends),
                    "pools": [
                        {
                            "name": p.name,
                            "accelerator": p.accelerator,
                            "engine": p.engine,
                            "ready_replicas": p.ready_replicas,
                            "desired_replicas": p.desired_replicas,
                        }
                        for p in entry.pools
                    ],
                    "ready_replicas": sum(p.ready_replicas for p in entry.pools)
                    if entry.pools
                    else len(route.backends),
                    "backends": backends,
                    "in_flight": sum(b["in_flight"] for b in backends),
                    "requests": counters.requests,
                    "tokens": {
                        "prompt": counters.prompt_tokens,
                        "completion": counters.completion_tokens,
                        "total": counters.prompt_tokens + counters.completion_tokens,
                    },
                }
            )
        return {
            "object": "stats",
            "uptime_s": round(time.time() - self._started, 1),
            "in_flight": sum(m["in_flight"] for m in models),
            "models": models,
        }
