"""``modelgrid gateway``: one OpenAI endpoint over every model (a static file and/or the
cluster's InferenceModels). Imports the gateway only once it runs; never Ray, kopf or an
engine, and of the operator only its typed API (the admin API's check of a load)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``gateway`` and its flags."""
    gateway = sub.add_parser("gateway", help="serve one OpenAI endpoint over every model")
    gateway.add_argument("--config", help="static YAML file: models, API keys, limits")
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    gateway.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of GET /metrics (default: the config's metrics.port, 9090); 0: off",
    )
    gateway.add_argument(
        "--kubernetes", action="store_true", help="also route to the cluster's InferenceModels"
    )
    gateway.add_argument(
        "--namespace", action="append", help="watch only this namespace (repeatable)"
    )
    gateway.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve the gateway until SIGINT or SIGTERM. Blocks."""
    from modelgrid_serving import gateway

    from modelgrid_cli.spec_check import check_spec

    gateway.serve(
        Path(args.config) if args.config else None,
        host=args.host,
        port=args.port,
        kubernetes=args.kubernetes,
        namespaces=tuple(args.namespace or ()),
        metrics_port=args.metrics_port,
        check_spec=check_spec,
    )
    return 0
