"""Run the gateway: uvicorn with httptools and uvloop when installed (measured: see
``bench/RESULTS.md``), no access log (the metrics count requests; logs would cost each one)."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

from .app import Gateway
from .config import load_config
from .state import GatewayState


def build_gateway(
    config_path: Path | None, *, kubernetes: bool = False, namespaces: Sequence[str] = ()
) -> Gateway:
    """The ASGI application for a config file (``None``: no static models, auth off)."""
    path = Path(config_path) if config_path is not None else None
    return Gateway(
        GatewayState(
            load_config(path), config_path=path, kubernetes=kubernetes, namespaces=namespaces
        )
    )


def serve(
    config_path: Path | None,
    *,
    host: str,
    port: int,
    kubernetes: bool,
    namespaces: Sequence[str] = (),
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

    Raises:
        pydantic.ValidationError: the config file is invalid.
    """
    import uvicorn

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_gateway(config_path, kubernetes=kubernetes, namespaces=namespaces)
    has = importlib.util.find_spec
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop" if has("uvloop") else "asyncio",
        http="httptools" if has("httptools") else "h11",
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # the gateway never reads the client address
        server_header=False,
        date_header=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
