"""The MLX sidecar's rendered probes against a real MLX generation server, listening where the
pod's sidecar listens (127.0.0.1): they pass while it serves and fail once it is gone.

Trigger: the sidecar's probes were ``httpGet``, which kubelet sends to the pod IP, while the
server is started with ``--host 127.0.0.1``: they could never succeed, and the sidecar was restarted
forever. The probe now runs inside the sidecar (``python -c`` with urllib) against 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from factories import make_model, pool
from local_stack import free_port
from modelgrid_operator.settings import RenderSettings
from modelgrid_serving import mlx_sidecar
from rendered import pool_rayservice

pytestmark = pytest.mark.integration


def _probe_commands(mlx_port: int) -> dict[str, list[str]]:
    model = make_model(engine="mlx", pools=[pool("mac", "apple")])
    rayservice = pool_rayservice(model, settings=RenderSettings(mlx_port=mlx_port))
    (group,) = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    (sidecar,) = [c for c in group["template"]["spec"]["containers"] if c["name"] == "mlx-server"]
    assert sidecar["args"][sidecar["args"].index("--host") + 1] == "127.0.0.1"
    return {
        name: [sys.executable, *sidecar[name]["exec"]["command"][1:]]  # the image's `python`
        for name in ("livenessProbe", "readinessProbe")
    }


def _run(command: list[str]) -> tuple[int, float]:
    start = time.monotonic()
    rc = subprocess.run(command, check=False, capture_output=True, timeout=10).returncode
    return rc, time.monotonic() - start


def test_mlx_probe_passes_while_the_sidecar_serves_and_fails_once_it_is_gone(
    tiny_model: Path, tmp_path: Path
) -> None:
    port = free_port()
    probes = _probe_commands(port)
    sidecar = mlx_sidecar.start(str(tiny_model), port=port, work=tmp_path)
    try:
        for name, command in probes.items():
            assert _run(command)[0] == 0, name
    finally:
        sidecar.stop()
    for name, command in probes.items():
        rc, took = _run(command)
        assert rc != 0, name
        assert took < 3, f"{name} took {took:.1f} s, beyond the probe's timeoutSeconds"
