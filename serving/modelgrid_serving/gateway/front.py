"""The gateway in front of ``modelgrid up``'s pools: one model name spread over every pool.

With several pools, ``modelgrid up`` serves each pool's application at ``/pools/<pool>`` behind
the Serve proxy on a spare port. This puts the gateway on the main port, as a child process with
a static file that lists every pool as a backend of the model's name (pool name as the pool
label), so one name is spread by live load over the pools exactly as in a cluster, and a pool that
stops answering leaves the route after its health probes fail. Each backend declares what its
pool's engine serves (:func:`~modelgrid_serving.protocol.capabilities.engine_capabilities`), so
a request goes only to pools that can serve all of it; pool pinning (``x-modelgrid-pool``) is on,
for tests and for a user comparing pools on their own machine, and pages served on this machine
(``http://localhost:*``, ``http://127.0.0.1:*``) may call it from a browser (CORS). A child process, not a thread:
the gateway runs its own event loop and uvloop, and stops with one signal.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import yaml

from .. import blocking_http
from ..config import ModelConfig
from ..protocol.capabilities import Capability, engine_capabilities

START_DEADLINE_S = 60.0
STOP_GRACE_S = 5.0
HEALTH_INTERVAL_S = 2.0
LOCAL_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")
"""Pages that may call ``modelgrid up``'s gateway from a browser: those served on this machine
(a web app in development on any port)."""


class PoolURL(Protocol):
    """Where one pool answers (``local.PoolEndpoint``)."""

    @property
    def pool(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def engine(self) -> str: ...


def front_config(config: ModelConfig, endpoints: Sequence[PoolURL]) -> dict[str, Any]:
    """The gateway's static file: the model's name and aliases, one backend per pool (with what
    its engine serves), pool pinning on."""

    def capabilities(engine: str) -> list[str]:
        declared = engine_capabilities(
            engine,
            tool_call_parser=config.tool_call_parser,
            reasoning_parser=config.reasoning_parser,
        )
        return [c.value for c in Capability if c in declared]

    return {
        "models": [
            {
                "name": config.model_name,
                "aliases": list(config.aliases),
                "backends": [
                    {
                        "url": f"{e.url.rstrip('/')}/v1",
                        "pool": e.pool,
                        "capabilities": capabilities(e.engine),
                    }
                    for e in endpoints
                ],
            }
        ],
        "routing": {"allow_pool_pinning": True},
        "cors": {"allow_origins": list(LOCAL_ORIGINS)},
        "limits": {"health_interval_s": HEALTH_INTERVAL_S},
    }


@contextmanager
def gateway_front(
    config: ModelConfig,
    endpoints: Sequence[PoolURL],
    host: str,
    port: int,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    """Run the gateway on ``host:port`` over ``endpoints`` while the context lasts.

    ``extra``: more of its configuration (``modelgrid up --admin``'s ``auth`` and ``admin``).
    It runs as ``modelgrid gateway``, which hands the admin API its check of a load.

    Yields:
        The gateway's base URL.

    Raises:
        SystemExit: the gateway did not come up (the message ends with its log).
    """
    work = Path(tempfile.mkdtemp(prefix="modelgrid-front-"))
    path = work / "gateway.yaml"
    document = {**front_config(config, endpoints), **(extra or {})}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    log = work / "gateway.log"
    argv = [sys.executable, "-m", "modelgrid_cli", "gateway", "--config", str(path)]
    argv += ["--host", host, "--port", str(port), "--metrics-port", "0"]  # the pools': Serve's
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not blocking_http.answers_ok(f"{url}/ready", timeout_s=2):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:]
                raise SystemExit(
                    f"modelgrid: the gateway in front of the pools did not start:\n{tail}"
                )
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_GRACE_S)
    except ProcessLookupError:
        pass
