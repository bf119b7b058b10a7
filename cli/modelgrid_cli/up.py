"""``modelgrid up model.yaml``: serve an InferenceModel on this machine, with embedded Ray and
the model's engine, behind the gateway (the ``serve`` extra and an engine's)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from modelgrid_cli.models import read_models, refusing_invalid_models

if TYPE_CHECKING:
    from modelgrid_serving.local import UpAdmin


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``up`` and its flags."""
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
    up.add_argument(
        "--admin",
        action="store_true",
        help="also take models loaded with `modelgrid load` (the gateway's admin API) and serve "
        "them next to this one; the admin key is written to a file only you can read",
    )
    up.add_argument(
        "--grpc-port",
        type=int,
        help="with --admin: also serve gRPC ModelHosting (LoadModel) on this port",
    )
    up.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve the chosen model until SIGINT or SIGTERM. Blocks."""
    from modelgrid_operator import api
    from modelgrid_operator.render import to_local_run
    from modelgrid_serving.gateway.front import gateway_front
    from modelgrid_serving.local import serve
    from modelgrid_serving.sources import default_cache
    from modelgrid_serving.tiny_model import write_tiny_model

    with refusing_invalid_models():
        models = read_models(args.file)
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
    if args.grpc_port and not args.admin:
        raise SystemExit("modelgrid: --grpc-port needs --admin")
    grpc = f"{args.host}:{args.grpc_port}" if args.grpc_port else None
    accelerator = model.spec.pools[0].accelerator.value  # where a load that names none runs
    admin = _admin(args.port, builtin_root, grpc, accelerator) if args.admin else None
    serve(
        config,
        host=args.host,
        port=args.port,
        front=gateway_front,
        console_port=console_port,
        admin=admin,
    )
    return 0


def _admin(port: int, builtin_root: Path, grpc_listen: str | None, accelerator: str) -> UpAdmin:
    """The admin API of this run: a fresh key (its file printed, never the key), the plan of a
    load, and the accelerator of a load that names none (the first model's first pool's)."""
    from functools import partial

    from modelgrid_serving.gateway.auth import hash_key
    from modelgrid_serving.local import UpAdmin

    from modelgrid_cli.up_admin import make_admin_key, plan_load

    key, path = make_admin_key(port)
    print(f"[modelgrid] admin API on: `modelgrid load URI` loads a model (admin key in {path})")
    return UpAdmin(
        plan=partial(plan_load, builtin_root=builtin_root),
        key_sha256=hash_key(key),
        accelerator=accelerator,
        grpc_listen=grpc_listen,
    )
