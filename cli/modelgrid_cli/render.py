"""``modelgrid render model.yaml``: print every Kubernetes object the operator would apply for
each InferenceModel (a RayService per pool, and its NetworkPolicy), under the same policy (host paths,
scheduling, engine args). Needs only the operator's API and renderers: no cluster, no kopf."""

from __future__ import annotations

import argparse
import sys

from modelgrid_cli.models import read_models, refusing_invalid_models


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``render`` and its flags."""
    render = sub.add_parser(
        "render",
        help="print every Kubernetes object the operator would create for an InferenceModel "
        "(a RayService per pool, and its NetworkPolicy), refusing what the operator's policy refuses",
    )
    render.add_argument("file", help="InferenceModel YAML, one or more documents")
    render.add_argument(
        "--allow-host-path",
        action="append",
        metavar="PREFIX",
        help="allow spec.model.uri paths on the node under PREFIX (repeatable), as the "
        "operator setting allowedHostPaths does; default: none",
    )
    render.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Render each model of the file, refusing what the operator would refuse."""
    from modelgrid_operator.policy import check_policy
    from modelgrid_operator.render import render_network_policy, render_rayservices
    from modelgrid_operator.settings import from_env

    from modelgrid_cli.documents import dump_documents

    settings = from_env()
    if args.allow_host_path:
        allowed = (*settings.allowed_host_paths, *args.allow_host_path)
        settings = settings.model_copy(update={"allowed_host_paths": allowed})
    objects = []
    with refusing_invalid_models():
        for model in read_models(args.file):
            check_policy(model, settings, source=args.file)  # what the operator would refuse
            objects += [
                *render_rayservices(model, settings=settings),
                render_network_policy(model, settings=settings),
            ]
    sys.stdout.write(dump_documents(objects))
    return 0
