"""Models loaded into a running ``modelgrid up`` (``--admin``): its gateway's admin API asks,
this process deploys, next to the first model, without a restart.

The gateway in front (a child process) is where keys and the typed InferenceModel check live;
it calls the control endpoint served here (loopback only, a random bearer token it reads from a
file only this user can read). This process owns Ray, so it turns each InferenceModel into a
:class:`~.config.LocalRun` (``plan``, handed in by the CLI: the operator's own
``to_local_run``), deploys one Serve application per pool under ``/models/<name>/<pool>`` and
reports each model as an InferenceModel with the status an operator would write (phase, phase
times, per-pool endpoints): the gateway routes to it as it routes to a cluster's.

A deploy runs in a thread of its own, one at a time (one machine: two engines starting at once
would only slow each other); a failed one is reported as phase Failed with the reason, and its
applications are removed.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .config import AppConfig, LocalRun
from .json_handler import JSONRequestHandler

logger = logging.getLogger(__name__)

NAMESPACE = "local"
"""The namespace ``modelgrid up``'s loaded models report (there is no cluster)."""
MODELS_PATH = "/models"
MAX_BODY_BYTES = 256 * 1024

Plan = Callable[[dict[str, Any]], LocalRun]
"""An InferenceModel document (already checked by the typed API) -> what to run here; prepares
the weights (a built-in model written, an archive imported). Raises ValueError with a message
for the user (a PVC, a source that is not here)."""
Deploy = Callable[[AppConfig, str, str], str]
"""``(app, application name, route prefix) -> base URL of the pool``: deploys and warms up one
pool. Raises on failure (its message is the reason)."""
Undeploy = Callable[[str], None]
"""Removes one Serve application (and whatever it started, an MLX server)."""


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Loaded:
    """One loaded model and what its load went through."""

    document: dict[str, Any]
    created: float
    phase: str = "Pending"
    phase_since: float = 0.0
    times: dict[str, float] = field(default_factory=dict)
    pools: list[dict[str, Any]] = field(default_factory=list)
    applications: list[str] = field(default_factory=list)
    reason: str | None = None
    removed: bool = False

    def enter(self, phase: str, now: float) -> None:
        self.times[self.phase.lower()] = round(now - self.phase_since, 3)
        self.phase, self.phase_since = phase, now

    def stored(self) -> dict[str, Any]:
        """The document with the status an operator would report."""
        meta = self.document["metadata"]
        spec = self.document["spec"]
        ready = self.phase == "Ready"
        status: dict[str, Any] = {
            "phase": self.phase,
            "phaseSince": _stamp(self.phase_since),
            "servedModelNames": [meta["name"], *spec.get("aliases", [])],
            "pools": self.pools,
            "readyReplicas": len(self.pools) if ready else 0,
            "replicas": f"{len(self.pools) if ready else 0}/{len(spec.get('pools', []))}",
            "timeToReady": {**self.times, **({"total": self._total()} if ready else {})},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "Serving"
                    if ready
                    else ("DeployFailed" if self.reason else "Loading"),
                    "message": self.reason or "",
                }
            ],
        }
        return {
            **self.document,
            "metadata": {**meta, "namespace": NAMESPACE, "creationTimestamp": _stamp(self.created)},
            "status": status,
        }

    def _total(self) -> float:
        return round(sum(self.times.values()), 3)


class LocalModels:
    """The models loaded into this process (besides the one it started with).

    Args:
        plan: InferenceModel document -> LocalRun (see :data:`Plan`).
        deploy: Deploys one pool (see :data:`Deploy`).
        undeploy: Removes one application (see :data:`Undeploy`).
        clock: Wall-clock seconds (tests pass their own).
    """

    def __init__(
        self,
        plan: Plan,
        deploy: Deploy,
        undeploy: Undeploy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._plan, self._deploy, self._undeploy, self._clock = plan, deploy, undeploy, clock
        self._models: dict[str, _Loaded] = {}
        self._lock = threading.Lock()
        self._one_deploy_at_a_time = threading.Lock()

    def load(self, document: dict[str, Any], *, background: bool = True) -> tuple[int, Any]:
        """Start loading ``document`` (an InferenceModel checked by the gateway); returns the
        HTTP status and body: 202 and the stored model, 409 for a name in use, 400 for what
        cannot run here."""
        name = str((document.get("metadata") or {}).get("name") or "")
        with self._lock:
            if name in self._models:
                return 409, _error(f"A model named {name!r} is loaded.", "conflict", "name")
        try:
            run = self._plan(document)
        except ValueError as exc:
            return 400, _error(str(exc), "invalid_value", "uri")
        except Exception as exc:  # a disk or import failure: said, not a crash
            logger.exception("preparing %s failed", name)
            return 500, _error(f"Preparing the model failed: {exc!r}", "server_error")
        now = self._clock()
        loaded = _Loaded(document, created=now, phase_since=now)
        with self._lock:
            if name in self._models:
                return 409, _error(f"A model named {name!r} is loaded.", "conflict", "name")
            self._models[name] = loaded
        if background:
            threading.Thread(
                target=self._run, args=(name, loaded, run), name=f"load-{name}", daemon=True
            ).start()
        else:
            self._run(name, loaded, run)
        return 202, loaded.stored()

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            loaded = self._models.get(name)
            return loaded.stored() if loaded else None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m.stored() for m in self._models.values()]

    def delete(self, name: str) -> bool:
        """Remove model ``name`` (its applications, once its deploy, if under way, is done).
        Returns whether it was there."""
        with self._lock:
            loaded = self._models.pop(name, None)
        if loaded is None:
            return False
        loaded.removed = True
        with self._one_deploy_at_a_time:  # a deploy under way finishes first
            for application in loaded.applications:
                self._undeploy(application)
        logger.info("unloaded %s", name)
        return True

    def _run(self, name: str, loaded: _Loaded, run: LocalRun) -> None:
        with self._one_deploy_at_a_time:
            if loaded.removed:
                return
            loaded.enter("Loading", self._clock())
            try:
                for app in run.applications():
                    application = f"admin-{name}-{app.pool.name}"
                    loaded.applications.append(application)
                    base = self._deploy(app, application, f"{MODELS_PATH}/{name}/{app.pool.name}")
                    loaded.pools.append(
                        {
                            "name": app.pool.name,
                            "accelerator": app.pool.accelerator.value,
                            "engine": app.pool.engine.value,
                            "endpoint": base,
                            "readyReplicas": 1,
                            "desiredReplicas": 1,
                        }
                    )
            except BaseException as exc:  # noqa: BLE001 - SystemExit included: reported, not raised
                loaded.reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
                loaded.enter("Failed", self._clock())
                loaded.pools.clear()
                for application in loaded.applications:
                    self._undeploy(application)
                logger.warning("loading %s failed: %s", name, loaded.reason)
                return
            loaded.enter("Ready", self._clock())
            logger.info("loaded %s in %.1f s", name, loaded._total())


def _error(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


class ControlServer:
    """The control endpoint of :class:`LocalModels` on 127.0.0.1, for the gateway in front.

    ``POST /models`` (an InferenceModel), ``GET /models``, ``GET``/``DELETE /models/<name>``;
    every call carries ``Authorization: Bearer <token>``.

    Args:
        models: What it serves.
        token: The bearer token (default: a fresh random one).
    """

    def __init__(self, models: LocalModels, token: str | None = None) -> None:
        self.models = models
        self.token = token or secrets.token_urlsafe(32)
        handler = _handler(models, self.token)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="modelgrid-control", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(models: LocalModels, token: str) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode()

    class Handler(JSONRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("control: " + format, *args)

        def _authorized(self) -> bool:
            given = (self.headers.get("authorization") or "").encode()
            if secrets.compare_digest(given, expected):
                return True
            self.send_json(401, _error("Control calls need the token.", "invalid_api_key"))
            return False

        def _name(self) -> str | None:
            if self.path == MODELS_PATH:
                return None
            return self.path.removeprefix(MODELS_PATH + "/")

        def do_GET(self) -> None:
            if not self._authorized():
                return
            name = self._name()
            if name is None:
                self.send_json(200, {"items": models.list()})
            elif (found := models.get(name)) is not None:
                self.send_json(200, found)
            else:
                self.send_json(404, _error(f"No model {name!r}.", "not_found"))

        def do_POST(self) -> None:
            if not self._authorized():
                return
            length = int(self.headers.get("content-length") or 0)
            if self.path != MODELS_PATH or not 0 < length <= MAX_BODY_BYTES:
                self.send_json(400, _error("POST an InferenceModel to /models.", "invalid_value"))
                return
            try:
                document = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_json(400, _error("Not JSON.", "invalid_json"))
                return
            self.send_json(*models.load(document))

        def do_DELETE(self) -> None:
            if not self._authorized():
                return
            name = self._name()
            if name is not None and models.delete(name):
                self.send_json(200, {"deleted": name})
            else:
                self.send_json(404, _error(f"No model {name!r}.", "not_found"))

    return Handler
