"""``modelgrid up --admin``: what the CLI hands local mode so that models can be loaded into the
running process (the operator's own ``to_local_run``, the built-in model, the archive import),
and the admin key of the run.

The key is made per run and written where only this user can read it, one file per port
(:func:`admin_key_path`); ``modelgrid load`` against that port finds it there, so on one machine
loading a model needs no key handling, and a web page the user visits (which can reach
127.0.0.1) cannot load anything: it cannot read the file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelgrid_serving.config import LocalRun


def admin_key_path(port: int) -> Path:
    """Where ``modelgrid up --admin --port PORT`` keeps its admin key."""
    from modelgrid_serving.sources import default_cache

    return default_cache() / "up" / f"admin-key-{port}"


def make_admin_key(port: int) -> tuple[str, Path]:
    """A fresh admin key for the run on ``port``, written (mode 0600) to its file.

    Returns:
        The key and its file.
    """
    key = f"sk-modelgrid-{secrets.token_urlsafe(32)}"
    path = admin_key_path(port)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key, path


def plan_load(document: dict[str, Any], *, builtin_root: Path) -> LocalRun:
    """What a loaded InferenceModel runs here: one replica per pool, its weights ready (a
    built-in model written, an archive imported after its checks, a path checked).

    Raises:
        ValueError: with a message for the client (a PVC, a source that is not here, a refused
            archive).
    """
    from modelgrid_operator import api
    from modelgrid_operator.render import to_local_run
    from modelgrid_operator.validation import InvalidModel, parse_model
    from modelgrid_serving.sources import resolve_model_source
    from modelgrid_serving.tiny_model import write_tiny_model

    try:
        model = parse_model(document)
    except InvalidModel as exc:  # the gateway checked it already; said again if it was not
        raise ValueError(str(exc)) from None
    run = to_local_run(model, builtin_root=str(builtin_root))
    if model.spec.model.kind is api.SourceKind.BUILTIN:
        write_tiny_model(builtin_root / model.spec.model.location)
    pools = tuple(p.model_copy(update={"min_replicas": 1, "max_replicas": 1}) for p in run.pools)
    source = resolve_model_source(run.model_source)  # ModelSourceError is a ValueError
    return run.model_copy(update={"model_source": source, "pools": pools})
