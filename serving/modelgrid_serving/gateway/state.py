"""The gateway assembled: each concern's part built once from the configuration, and registered
in one place.

Each part is a module of its own: the routing table and keys (:mod:`.catalog`), load balancing
(:mod:`.balancer`), per-key limits (:mod:`.limits`), the per-request accounting that every
finished request reports to (:mod:`.sink`, with the stats, metrics and live figures as its
recorders), and the background services that keep the catalog and the limits current (the
health probe :mod:`.health`, the config and Kubernetes watches :mod:`.watch`, the peers
:mod:`.peers`). A new concern is a new module and one line here: a recorder of the sink, a
listener of the catalog's table, or a service.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from .admin import Admin, ModelStore, SpecCheck
from .balancer import Balancer
from .catalog import Catalog, backend_urls
from .config import GatewayConfig, LimitsConfig
from .health import HealthProbe
from .limits import RateLimiter
from .live import LiveFigures
from .metrics import GatewayMetrics
from .peers import PEER_SECRET_ENV, PEER_SECRET_FILE_ENV, PeerSync, read_peer_secret
from .relay import Relay
from .sink import Sink
from .stats import Stats
from .upstream import Upstream
from .watch import FileWatch, KubernetesWatch


class Service(Protocol):
    """Background work that keeps a part current, from the gateway's start to its stop."""

    def start(self, session: aiohttp.ClientSession) -> None:
        """Begin, on the event loop (``session``: for the gateway's own calls). Raising stops
        the gateway from starting."""

    async def stop(self) -> None:
        """End what :meth:`start` began."""


class Loop:
    """A :class:`Service` that is one coroutine, run as a task until the gateway stops.

    Args:
        run: The coroutine function (``session -> never returns``).
    """

    def __init__(self, run: Callable[[aiohttp.ClientSession], Coroutine[Any, Any, None]]) -> None:
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self, session: aiohttp.ClientSession) -> None:
        self._task = asyncio.create_task(self._run(session))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class GatewayState:
    """Every part the routes read, and the services that keep them current.

    Args:
        config: The static configuration (models, keys, limits).
        config_path: The file it came from; watched for changes (static models and keys).
        kubernetes: Also route to InferenceModels found by a Kubernetes watch.
        namespaces: Watch these namespaces only (empty: all).
        check_spec: The typed InferenceModel check of the admin API (``admin.enabled``).
        model_store: Where the admin API's models live; default, in Kubernetes mode: the
            InferenceModels of ``admin.namespace``.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        config_path: Path | None = None,
        kubernetes: bool = False,
        namespaces: Sequence[str] = (),
        check_spec: SpecCheck | None = None,
        model_store: ModelStore | None = None,
    ) -> None:
        self.config = config
        self.limits: LimitsConfig = config.limits
        """The limits in force (a reload replaces them, but for what applies from a start)."""
        self._started = time.time()
        self.metrics = GatewayMetrics()
        self.balancer = Balancer(max_in_flight=config.limits.max_in_flight_per_backend)
        self.catalog = Catalog(
            auth_enabled=config.auth.enabled,
            max_concurrent_per_key=config.limits.max_concurrent_per_key,
            listeners=(
                lambda table: self.balancer.forget(backend_urls(table)),
                self.metrics.count_ready_backends,
            ),
        )
        self.limiter = RateLimiter()
        self.live = LiveFigures()
        """The console's live figures, fed by every relayed request."""
        self.stats = Stats(self.catalog, self.balancer, started=self._started)
        self.sink = Sink(
            self.metrics,
            self.limiter,
            (self.stats.count, self.metrics.finished, self.live.finished),
        )
        peers = config.limits.peers
        self.peers = (
            PeerSync(self.limiter, peers, read_peer_secret(os.environ), self.live)
            if peers.enabled
            else None
        )
        self.services: list[Service] = self._watchers(config, config_path, kubernetes, namespaces)
        """Started in this order by :meth:`startup`, stopped in reverse by :meth:`shutdown`."""
        self.session: aiohttp.ClientSession | None = None
        """For the gateway's own calls: health probes, GPU info, peers."""
        self.upstream = Upstream(
            connect_timeout_s=config.limits.connect_timeout_s,
            read_timeout_s=config.limits.read_timeout_s,
        )
        """For proxied requests (the hot path); it connects on demand."""
        self.relay = Relay(self.upstream, self.balancer, self.metrics)
        self.catalog.apply_static(config, created=int(self._started), initial=True)
        self.grpc: Any = None
        """The gRPC ModelHosting server (``admin.grpc_listen``), when there is one."""
        self.admin = (
            self._admin(config, kubernetes, check_spec, model_store)
            if config.admin.enabled
            else None
        )
        """The admin API (``/v1/admin/models``), when enabled."""

    def _watchers(
        self,
        config: GatewayConfig,
        config_path: Path | None,
        kubernetes: bool,
        namespaces: Sequence[str],
    ) -> list[Service]:
        """The services that keep the routing table and limits current: the peers' sync, the
        Kubernetes watch, the backends' health probes, the configuration file's watch (each
        when configured; the admin API adds its own after them)."""
        services: list[Service] = []
        if self.peers is not None:
            services.append(Loop(self.peers.run))
        if kubernetes:
            services.append(KubernetesWatch(self.catalog, config.auth, namespaces))
        if config.limits.health_interval_s > 0:
            services.append(Loop(HealthProbe(self.catalog, config.limits.health_interval_s).run))
        if config_path is not None:
            services.append(Loop(FileWatch(config_path, config, self._reload).run))
        return services

    def _admin(
        self,
        config: GatewayConfig,
        kubernetes: bool,
        check_spec: SpecCheck | None,
        store: ModelStore | None,
    ) -> Admin:
        if check_spec is None:
            raise ValueError(
                "admin.enabled: run the gateway as `modelgrid gateway` (it checks loads with "
                "the InferenceModel API)"
            )
        if store is None and config.admin.control_url:
            from .up_models import UpModels

            if config.admin.control_token_file is None:
                raise ValueError("admin.control_url needs admin.control_token_file")
            up = UpModels(config.admin.control_url, config.admin.control_token_file, self.catalog)
            self.services.append(up)
            store = up
        if store is None:
            if not kubernetes:
                raise ValueError(
                    "admin.enabled: models are loaded into a cluster (--kubernetes) or into "
                    "`modelgrid up --admin`"
                )
            from .cluster_models import ClusterModels
            from .sources import current_namespace

            store = ClusterModels(config.admin.namespace or current_namespace())
        admin = Admin(store, self.catalog, self.balancer, check_spec, config.admin)
        self.services.append(admin)
        if config.admin.grpc_listen:
            from .grpc_hosting import GrpcHosting, ModelHostingService

            service = ModelHostingService(admin, lambda auth: self.catalog.keys.authenticate(auth))
            self.grpc = GrpcHosting(service, config.admin.grpc_listen)
            self.services.append(self.grpc)
        return admin

    def _reload(self, config: GatewayConfig) -> None:
        """A changed config file: its limits (but the backends' in-flight bound, which the
        balancer holds from the start), its models and keys."""
        self.limits = config.limits.model_copy(
            update={"max_in_flight_per_backend": self.limits.max_in_flight_per_backend}
        )
        self.config = config
        self.catalog.apply_static(config, created=int(self._started))

    # ---- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open the client of the gateway's own calls, start the services."""
        if self.peers is not None and self.catalog.keys.enabled and self.peers.secret is None:
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
        for service in self.services:
            service.start(self.session)

    async def shutdown(self) -> None:
        """Stop everything :meth:`startup` started."""
        for service in reversed(self.services):
            await service.stop()
        if self.session is not None:
            await self.session.close()
        self.upstream.close()
