"""Run the gateway: its own HTTP/1.1 server (:mod:`.http_server`) on uvloop when installed
(measured: see ``bench/RESULTS.md``), no access log (the metrics count requests; logs would cost
each one)."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

from .admin import ModelStore, SpecCheck
from .app import Gateway
from .config import load_config
from .cors import with_cors
from .http_server import HTTPServer
from .metrics import MetricsApp
from .state import GatewayState

SHUTDOWN_GRACE_S = 5.0
"""On SIGTERM, requests in flight get this long to finish before their connections close."""


def build_gateway(
    config_path: Path | None,
    *,
    kubernetes: bool = False,
    namespaces: Sequence[str] = (),
    check_spec: SpecCheck | None = None,
    model_store: ModelStore | None = None,
) -> Gateway:
    """The ASGI application for a config file (``None``: no static models, auth off); the
    admin API's spec check and store as :class:`~.state.GatewayState` takes them."""
    path = Path(config_path) if config_path is not None else None
    return Gateway(
        GatewayState(
            load_config(path),
            config_path=path,
            kubernetes=kubernetes,
            namespaces=namespaces,
            check_spec=check_spec,
            model_store=model_store,
        )
    )


def serve(
    config_path: Path | None,
    *,
    host: str,
    port: int,
    kubernetes: bool,
    namespaces: Sequence[str] = (),
    metrics_port: int | None = None,
    check_spec: SpecCheck | None = None,
) -> None:
    """Serve the gateway on ``host:port`` until SIGINT or SIGTERM. Blocks.

    Args:
        config_path: The static YAML file (models, keys, limits); ``None`` for none.
        host: Interface to listen on.
        port: Port to listen on.
        kubernetes: Also route to the InferenceModels a Kubernetes watch finds (in-cluster
            credentials, else the kubeconfig).
        namespaces: Watch only these namespaces (empty: all namespaces). The keys Secret is
            read from ``auth.secret_namespace``, else the gateway pod's own namespace.
        metrics_port: Port of ``GET /metrics`` on ``host`` (0: off); ``None``: the config
            file's ``metrics.port``.
        check_spec: The typed InferenceModel check, for the admin API (``admin.enabled``).

    Raises:
        ConfigError: the config file (or its keys file) is invalid.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_gateway(
        config_path, kubernetes=kubernetes, namespaces=namespaces, check_spec=check_spec
    )
    loop_factory = None
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(app, host, port, metrics_port))


def build_servers(app: Gateway) -> tuple[HTTPServer, HTTPServer]:
    """The API's server, with the config's bounds on request bodies and its CORS settings
    (:mod:`.cors`), and the metrics' server (:class:`~.metrics.MetricsApp`, for a port of its
    own). Neither listens yet."""
    limits = app.state.limits
    api = HTTPServer(
        with_cors(app, app.state.config.cors),
        body_timeout_s=limits.body_timeout_s,
        min_body_rate_bytes_s=limits.min_body_rate_bytes_s,
    )
    return api, HTTPServer(MetricsApp(app.state.metrics))


async def _serve(app: Gateway, host: str, port: int, metrics_port: int | None) -> None:
    """Start the state (sources, probes), listen (the API, and the metrics on their own port),
    and on SIGINT/SIGTERM stop in order."""
    await app.state.startup()
    server, metrics_server = build_servers(app)
    if metrics_port is None:
        metrics_port = app.state.config.metrics.port
    metrics = metrics_server if metrics_port else None
    try:
        await server.start(host, port)
        if metrics is not None:
            await metrics.start(host, metrics_port)
        # What startup built (imports, routing table, metrics) lives as long as the process:
        # out of the collector's sight, so that its full collections under load do not walk it
        # (measured: the collector was 15% of the gateway's CPU at 32 concurrent clients).
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await server.stop(grace_s=SHUTDOWN_GRACE_S)
        if metrics is not None:
            await metrics.stop(grace_s=0)
        await app.state.shutdown()
