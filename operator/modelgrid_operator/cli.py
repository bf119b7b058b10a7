"""The ``modelgrid`` command.

- ``modelgrid up model.yaml``: serve an InferenceModel on this machine (embedded Ray + engine).
- ``modelgrid render model.yaml``: print every Kubernetes object the operator would apply
  (RayService and NetworkPolicy), under the same policy (host paths, scheduling, engine args).
- ``modelgrid crd``: print the InferenceModel CRD generated from the typed API.
- ``modelgrid dashboards DIR``: write the Grafana dashboards (JSON built in code) into DIR.
- ``modelgrid operator``: run the kopf operator against the current cluster.
- ``modelgrid gateway``: one OpenAI endpoint over every model (static file and/or cluster).
- ``modelgrid dev tiny-model DIR``: generate the tiny test model (no download).

Bad input exits non-zero with the file, the YAML path of the bad field and a one-line reason,
never a traceback. Heavy imports (Ray, engines, kopf) happen only in the commands that use them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from modelgrid_operator import __version__, api
from modelgrid_operator.validation import InvalidModel, load_models


class _BlockDumper(yaml.SafeDumper):
    """Dumps multi-line strings (the Serve config) as readable ``|`` blocks, without anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_representer)


def dump_documents(objects: Sequence[dict[str, Any]]) -> str:
    """Objects as multi-document YAML, like ``helm template``."""
    return yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False, explicit_start=True)


def default_cache() -> Path:
    """Where modelgrid keeps generated models: ``$MODELGRID_CACHE`` or ``~/.cache/modelgrid``."""
    return Path(os.environ.get("MODELGRID_CACHE") or Path.home() / ".cache" / "modelgrid")


def _render(args: argparse.Namespace) -> int:
    from modelgrid_operator.policy import check_policy
    from modelgrid_operator.render import render_network_policy, render_rayservice
    from modelgrid_operator.settings import from_env

    settings = from_env()
    if args.allow_host_path:
        allowed = (*settings.allowed_host_paths, *args.allow_host_path)
        settings = settings.model_copy(update={"allowed_host_paths": allowed})
    objects = []
    for model in load_models(Path(args.file)):
        check_policy(model, settings, source=args.file)  # what the operator would refuse
        objects += [
            render_rayservice(model, settings=settings),
            render_network_policy(model, settings=settings),
        ]
    sys.stdout.write(dump_documents(objects))
    return 0


def _crd(_: argparse.Namespace) -> int:
    from modelgrid_operator.crd import render_crd_yaml

    sys.stdout.write(render_crd_yaml())
    return 0


def _dashboards(args: argparse.Namespace) -> int:
    try:
        from modelgrid_operator.dashboards import write_dashboards
    except ImportError as exc:  # a development tool: say what to install
        raise SystemExit(
            f"modelgrid: dashboards need grafana-foundation-sdk ({exc}); "
            "install the dev extra: pip install 'modelgrid[dev]'"
        ) from None
    for path in write_dashboards(Path(args.dir)):
        print(path)
    return 0


def _operator(args: argparse.Namespace) -> int:
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


def _gateway(args: argparse.Namespace) -> int:
    from modelgrid_serving.gateway import serve

    serve(
        Path(args.config) if args.config else None,
        host=args.host,
        port=args.port,
        kubernetes=args.kubernetes,
        namespaces=tuple(args.namespace or ()),
    )
    return 0


def _tiny_model(args: argparse.Namespace) -> int:
    from modelgrid_serving.tiny_model import write_tiny_model

    print(write_tiny_model(Path(args.dir)))
    return 0


def _up(args: argparse.Namespace) -> int:
    from modelgrid_serving.gateway.front import gateway_front
    from modelgrid_serving.local import serve
    from modelgrid_serving.tiny_model import write_tiny_model

    from modelgrid_operator.render import to_local_run

    models = list(load_models(Path(args.file)))
    if args.model:
        models = [m for m in models if m.name == args.model]
        if not models:
            raise SystemExit(f"modelgrid: {args.file} has no InferenceModel named {args.model!r}")
    elif len(models) > 1:
        names = ", ".join(m.name for m in models)
        raise SystemExit(
            f"modelgrid: {args.file} holds several models ({names}); pick one with --model"
        )
    model = models[0]
    builtin_root = default_cache() / "models"
    try:
        config = to_local_run(model, builtin_root=str(builtin_root), pool=args.pool)
    except ValueError as exc:
        raise SystemExit(f"modelgrid: {args.file}: {exc}") from None
    if model.spec.model.kind is api.SourceKind.BUILTIN:
        write_tiny_model(builtin_root / model.spec.model.location)
    console_port = None if args.console_port == 0 else args.console_port or args.port + 1
    serve(config, host=args.host, port=args.port, front=gateway_front, console_port=console_port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="modelgrid", description="Serve LLMs behind one OpenAI-compatible API."
    )
    parser.add_argument("--version", action="version", version=f"modelgrid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="serve an InferenceModel on this machine")
    up.add_argument("file", help="InferenceModel YAML (the same file you kubectl apply)")
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    up.add_argument("--model", help="which InferenceModel of the file, when it holds several")
    up.add_argument("--pool", help="serve only this pool (default: every pool, a gateway in front)")
    up.add_argument(
        "--console-port",
        type=int,
        help="with one pool, the web console (the gateway in front of it) listens here "
        "(default: --port + 1; 0: none). With several pools it is on --port.",
    )
    up.set_defaults(func=_up)

    render = sub.add_parser(
        "render",
        help="print every Kubernetes object the operator would create for an InferenceModel "
        "(its RayService and NetworkPolicy), refusing what the operator's policy refuses",
    )
    render.add_argument("file", help="InferenceModel YAML, one or more documents")
    render.add_argument(
        "--allow-host-path",
        action="append",
        metavar="PREFIX",
        help="allow spec.model.uri paths on the node under PREFIX (repeatable), as the "
        "operator setting allowedHostPaths does; default: none",
    )
    render.set_defaults(func=_render)

    crd = sub.add_parser("crd", help="print the InferenceModel CRD")
    crd.set_defaults(func=_crd)

    dashboards = sub.add_parser("dashboards", help="write the Grafana dashboards as JSON")
    dashboards.add_argument("dir", help="output directory, e.g. charts/modelgrid/dashboards")
    dashboards.set_defaults(func=_dashboards)

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
        default=10.0,
        help="seconds between status refreshes of each model (10)",
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
    operator.set_defaults(func=_operator)

    gateway = sub.add_parser("gateway", help="serve one OpenAI endpoint over every model")
    gateway.add_argument("--config", help="static YAML file: models, API keys, limits")
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    gateway.add_argument(
        "--kubernetes", action="store_true", help="also route to the cluster's InferenceModels"
    )
    gateway.add_argument(
        "--namespace", action="append", help="watch only this namespace (repeatable)"
    )
    gateway.set_defaults(func=_gateway)

    dev = sub.add_parser("dev", help="developer tools")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    tiny = dev_sub.add_parser("tiny-model", help="generate the tiny test model into DIR")
    tiny.add_argument("dir", help="output directory (reused when already complete)")
    tiny.set_defaults(func=_tiny_model)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelgrid`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InvalidModel as exc:
        for error in exc.errors:
            print(f"modelgrid: {exc.source}: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"modelgrid: {exc.filename}: no such file", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
