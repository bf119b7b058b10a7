"""``modelgrid operator``: run the kopf operator against the current cluster (in-cluster
credentials, else the kubeconfig). Imports kopf and the operator's handlers only once it runs;
never Ray, an engine or the gateway."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``operator`` and its flags."""
    operator = sub.add_parser("operator", help="run the operator against the current cluster")
    operator.add_argument(
        "--namespace", action="append", help="watch only this namespace (repeatable); default: all"
    )
    operator.add_argument(
        "--hub-metadata",
        action="store_true",
        help="read config.json and weight sizes of Hugging Face models from the Hub for the "
        "memory admission (needs network; default: spec fields and local paths only)",
    )
    operator.add_argument(
        "--refresh",
        type=float,
        default=60.0,
        help="seconds between reconciles of every model from memory, for what changes with "
        "time alone; changes reconcile at once (60)",
    )
    operator.add_argument(
        "--resync",
        type=float,
        default=3600.0,
        help="seconds in which every model is reconciled once from the API server, spread "
        "over the interval: the safety net for a missed watch event (3600)",
    )
    operator.add_argument(
        "--health-port",
        type=int,
        default=8080,
        help="port of the /healthz liveness endpoint (8080)",
    )
    operator.add_argument(
        "--metrics-port",
        type=int,
        default=8081,
        help="port of the Prometheus /metrics endpoint (8081); 0 turns it off",
    )
    operator.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the operator until it is stopped. Blocks."""
    import asyncio
    from functools import partial

    import kopf
    from modelgrid_operator.handlers import OperatorConfig, build_registry
    from modelgrid_operator.metrics import OperatorMetrics, serve_metrics
    from modelgrid_operator.model_info import read_model_facts
    from modelgrid_operator.reconcile import read_local_facts
    from modelgrid_operator.settings import from_env

    metrics = OperatorMetrics()
    if args.metrics_port:
        serve_metrics(metrics, args.metrics_port)
    registry = build_registry(
        OperatorConfig(
            render=from_env(),
            refresh_interval=args.refresh,
            resync_interval=args.resync,
            metrics=metrics,
            read_facts=partial(read_model_facts, hub=True)
            if args.hub_metadata
            else read_local_facts,
        )
    )
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not args.namespace,
            namespaces=args.namespace or [],
            liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
            standalone=True,
        )
    )
    return 0
