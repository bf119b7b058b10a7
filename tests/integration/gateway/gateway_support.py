"""Helpers of the gateway tests (fixtures in conftest.py): real mlx_lm.server backends on the tiny model, real gateways.

Every server runs in its own process group and is stopped (SIGTERM, then SIGKILL) at teardown.
mlx_lm.server is the cheap real engine here (about a second to start); the gateway is started as
its users start it, ``python -m modelgrid_serving.gateway --config FILE``. mlx_lm.server knows its
model by its absolute path: the static config maps served names to it (``model:``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import yaml
from local_stack import free_port
from polling import wait_for

START_DEADLINE_S = 90.0  # mlx starts in 1-3 s alone; two cores shared with other suites


def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


@dataclass
class Server:
    """A process we started, in its own process group."""

    name: str
    url: str
    """Root URL, no trailing slash."""
    log: Path
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self

    def wait_ready(self, path: str = "/health") -> Server:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            return status_of(self.url + path) == 200

        wait_for(ready, timeout=START_DEADLINE_S, what=f"{self.name} at {self.url}{path}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


@dataclass
class Servers:
    """Starts servers and stops every one of them at teardown (:meth:`stop_all`, or the end
    of a ``with`` block)."""

    work: Path
    started: list[Server] = field(default_factory=list)

    def mlx(self, model_dir: Path, *, port: int | None = None, name: str = "mlx") -> Server:
        port = port or free_port()
        hf_cache = self.work / "hf-cache"  # mlx_lm lists no model without an existing HF cache
        hf_cache.mkdir(exist_ok=True)
        env = {**os.environ, "HF_HUB_CACHE": str(hf_cache), "HF_HUB_OFFLINE": "1"}
        argv = [
            sys.executable,
            "-m",
            "mlx_lm",
            "server",
            "--model",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        server = Server(
            name, f"http://127.0.0.1:{port}", self.work / f"{name}-{port}.log", argv, env
        )
        self.started.append(server)
        return server.start()

    def gateway(
        self,
        config: dict[str, Any],
        *,
        name: str = "gateway",
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> Gateway:
        port, metrics_port = free_port(), free_port()
        path = self.work / f"{name}-{port}.yaml"
        path.write_text(yaml.safe_dump(config))
        argv = [
            sys.executable,
            "-m",
            "modelgrid_serving.gateway",
            "--config",
            str(path),
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            *extra_args,
        ]
        server = Server(
            name,
            f"http://127.0.0.1:{port}",
            self.work / f"{name}-{port}.log",
            argv,
            {**os.environ, **(env or {})},
        )
        self.started.append(server)
        server.start().wait_ready("/health")
        return Gateway(
            server=server, config_path=path, metrics_url=f"http://127.0.0.1:{metrics_port}"
        )

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()


@dataclass
class Gateway:
    server: Server
    config_path: Path
    metrics_url: str
    """Where its ``GET /metrics`` answers: a port of its own, not the API's."""

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def v1(self) -> str:
        return self.server.url + "/v1"


def backend(server: Server, model_dir: Path, pool: str = "default") -> dict[str, Any]:
    """A static backend entry for an mlx server (which knows its model by absolute path)."""
    return {"url": server.url + "/v1", "model": str(model_dir), "pool": pool}


@dataclass(frozen=True)
class Backends:
    """The shared mlx servers: two for ``tiny`` (one name, two replicas), one for ``tiny-b``."""

    a: Server
    b: Server
    c: Server
    tiny: Path
    other: Path


def static_config(backends: Backends, **extra: Any) -> dict[str, Any]:
    """Two ready models (one on two backends) and one whose only backend is not there."""
    return {
        "models": [
            {
                "name": "tiny",
                "aliases": ["tiny-chat"],
                "backends": [
                    backend(backends.a, backends.tiny, "a"),
                    backend(backends.b, backends.tiny, "b"),
                ],
            },
            {"name": "tiny-b", "backends": [backend(backends.c, backends.other, "c")]},
            {"name": "ghost", "backends": [{"url": f"http://127.0.0.1:{free_port()}/v1"}]},
        ],
        "limits": {"health_interval_s": 0.5, "max_body_bytes": 65536},
        **extra,
    }
