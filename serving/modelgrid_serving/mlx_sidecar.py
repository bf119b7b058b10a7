"""The MLX server beside an Apple pool's replicas, when this machine runs it (``modelgrid up``).

The server is :mod:`.mlx_generation_server`, in a cluster and here alike: in a cluster the pod's
``mlx-server`` container runs it; locally it is a child process of ``modelgrid up`` on a free port, started before the Serve application (whose replica
waits for it) and stopped with everything else.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_MODULE = "modelgrid_serving.mlx_generation_server"
"""What the sidecar runs (``python -m``), here and in a pod's ``mlx-server`` container."""
START_DEADLINE_S = 120.0
STOP_GRACE_S = 5.0


class SidecarError(RuntimeError):
    """The MLX server did not start; the message is one line plus the end of its log."""


@dataclass
class Sidecar:
    """A running MLX generation server."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; never raises."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def command(model: str, *, host: str, port: int) -> list[str]:
    """The command line of an MLX generation server for ``model`` (a path or a Hugging Face id)."""
    return [
        sys.executable, "-m", SERVER_MODULE,
        "--model", model, "--host", host, "--port", str(port),
    ]  # fmt: skip


def start(model: str, *, port: int, work: Path, deadline_s: float = START_DEADLINE_S) -> Sidecar:
    """Start an MLX generation server on ``127.0.0.1:port`` and wait until it answers ``/health``.

    Args:
        model: What it loads (a local path, or a Hugging Face id it may download).
        port: A free port.
        work: A private directory for its log.
        deadline_s: How long loading may take.

    Raises:
        SidecarError: it exited or did not answer in time (it is stopped first).
    """
    from . import blocking_http

    work.mkdir(parents=True, exist_ok=True)
    log = work / f"mlx-server-{port}.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command(model, host="127.0.0.1", port=port),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    sidecar = Sidecar(url, proc, log)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SidecarError(f"the MLX server exited with {proc.returncode}:\n{_tail(log)}")
        if blocking_http.answers_ok(f"{url}/health", timeout_s=2):
            return sidecar
        time.sleep(0.2)
    sidecar.stop()
    raise SidecarError(f"the MLX server did not answer within {deadline_s:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
