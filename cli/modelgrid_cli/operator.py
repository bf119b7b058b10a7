"""``modelgrid operator``: run the kopf operator against the current cluster (in-cluster
credentials, else the kubeconfig). Imports kopf and the operator's handlers only once it runs;
never Ray, an engine or the gateway."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelgrid_operator.leadership import Election


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
        help="port of the /healthz liveness endpoint, served leader or not (8080)",
    )
    operator.add_argument(
        "--metrics-port",
        type=int,
        default=8081,
        help="port of the Prometheus /metrics endpoint (8081); 0 turns it off",
    )
    election = operator.add_argument_group(
        "leader election",
        "several replicas, one reconciling: the holder of a coordination.k8s.io Lease "
        "(docs/operator.md#leader-election)",
    )
    election.add_argument(
        "--leader-elect",
        action="store_true",
        help="reconcile only while holding the Lease; exit when it is lost (default: reconcile "
        "at once, as the only replica)",
    )
    election.add_argument(
        "--lease-namespace",
        help="namespace of the Lease (default: the pod's own, from its service account)",
    )
    election.add_argument(
        "--lease-name", default="modelgrid-operator", help="name of the Lease (modelgrid-operator)"
    )
    election.add_argument(
        "--lease-duration",
        type=int,
        default=15,
        help="seconds a Lease not renewed stays with its holder; the longest handover after a "
        "leader dies without handing it back (15)",
    )
    election.add_argument(
        "--renew-deadline",
        type=int,
        default=10,
        help="seconds the leader keeps trying to renew before it stops; below --lease-duration (10)",
    )
    election.add_argument(
        "--retry-period",
        type=int,
        default=2,
        help="seconds between tries to take or renew the Lease (2)",
    )
    operator.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the operator until it is stopped (or, under leader election, loses the Lease). Blocks."""
    import asyncio
    import logging
    from functools import partial

    import kopf
    from modelgrid_operator.handlers import OperatorConfig, build_registry
    from modelgrid_operator.health import serve_health
    from modelgrid_operator.k8s import Client
    from modelgrid_operator.leadership import LeadershipLost, lead
    from modelgrid_operator.metrics import OperatorMetrics, serve_metrics
    from modelgrid_operator.model_info import read_model_facts
    from modelgrid_operator.reconcile import read_local_facts
    from modelgrid_operator.settings import from_env

    election = _election(args) if args.leader_elect else None
    kopf.configure(verbose=False)
    # The election library logs every try at INFO (each 2 s on a waiting replica); the
    # operator logs the changes itself (candidate, leading, lost).
    logging.getLogger("leaderelection").setLevel(logging.WARNING)
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
    leading = election is None

    async def reconcile() -> None:
        nonlocal leading
        leading = True
        metrics.leader.set(1)
        await kopf.operator(
            registry=registry,
            clusterwide=not args.namespace,
            namespaces=args.namespace or [],
            standalone=True,
        )

    async def main() -> None:
        async with serve_health(args.health_port, lambda: leading):
            if election is None:
                await reconcile()
            else:
                await lead(election, Client.from_environment().api_client, reconcile)

    try:
        asyncio.run(main())
    except LeadershipLost as lost:
        logging.getLogger("modelgrid_operator").error("%s: exiting to start over", lost)
        return 1
    return 0


_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _election(args: argparse.Namespace) -> Election:
    """The Election the flags describe; a wrong value is a usage error, not a traceback."""
    from pathlib import Path

    from modelgrid_operator.leadership import Election

    namespace = args.lease_namespace
    if not namespace and Path(_SERVICE_ACCOUNT_NAMESPACE).is_file():
        namespace = Path(_SERVICE_ACCOUNT_NAMESPACE).read_text().strip()
    if not namespace:
        raise SystemExit("modelgrid operator: --leader-elect outside a pod needs --lease-namespace")
    try:
        return Election(
            namespace=namespace,
            name=args.lease_name,
            lease_seconds=args.lease_duration,
            renew_seconds=args.renew_deadline,
            retry_seconds=args.retry_period,
        )
    except ValueError as exc:
        raise SystemExit(f"modelgrid operator: {exc}") from None
