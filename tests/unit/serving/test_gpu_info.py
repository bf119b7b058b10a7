"""``GET /v1/gpu/info`` of a replica: what NVML and MLX report, and the route's answer.

NVML and Metal are replaced by test doubles here (this machine has neither); the CUDA path of
the probe is the same code on a GPU node.
"""

from __future__ import annotations

import socket
import sys
import types
from typing import Any

import pytest
from fastapi.testclient import TestClient
from modelgrid_serving import devices
from modelgrid_serving.api import build_api
from modelgrid_serving.metrics import Metrics
from modelgrid_serving.protocol import GPUDevice
from test_api import ScriptedEngine, make_config

pytestmark = pytest.mark.unit


class _NVMLError(Exception):
    pass


def fake_pynvml(*, init_fails: bool = False, names: tuple[Any, ...] = (b"NVIDIA H100",)) -> Any:
    """A stand-in for the ``pynvml`` bindings with two calls' worth of state."""
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if init_fails:
            raise _NVMLError("Driver Not Loaded")

    module = types.SimpleNamespace(
        NVMLError=_NVMLError,
        calls=calls,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlSystemGetDriverVersion=lambda: "570.86.15",
        nvmlSystemGetCudaDriverVersion=lambda: 12080,
        nvmlDeviceGetCount=lambda: len(names),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda i: names[i],
        nvmlDeviceGetMemoryInfo=lambda i: types.SimpleNamespace(
            total=80 * 1024**3, free=(60 + i) * 1024**3
        ),
        nvmlDeviceGetCudaComputeCapability=lambda i: (9, 0),
    )
    return module


def test_nvidia_gpus_come_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_pynvml(names=(b"NVIDIA H100", "NVIDIA H100"))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    gpus = devices.probe_gpus()
    assert [g.model_dump() for g in gpus] == [
        {
            "id": i,
            "name": "NVIDIA H100",
            "vendor": "nvidia",
            "total_memory_gb": 80.0,
            "free_memory_gb": 60.0 + i,
            "compute_capability": "9.0",
            "driver_version": "570.86.15",
            "cuda_version": "12.8",
        }
        for i in range(2)
    ]
    assert nvml.calls == ["init", "shutdown"]


def test_no_driver_means_no_nvidia_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_pynvml(init_fails=True)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(devices, "_apple", lambda: [])
    assert devices.probe_gpus() == []
    assert nvml.calls == ["init"]


def test_apple_gpu_comes_from_metal(monkeypatch: pytest.MonkeyPatch) -> None:
    mx = pytest.importorskip("mlx.core")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: no CUDA stack
    monkeypatch.setattr(mx.metal, "is_available", lambda: True)
    monkeypatch.setattr(
        mx.metal,
        "device_info",
        lambda: {"architecture": "applegpu_g15s", "memory_size": 64 * 1024**3},
    )
    (gpu,) = devices.probe_gpus()
    assert (gpu.vendor, gpu.total_memory_gb, gpu.free_memory_gb) == ("apple", 64.0, None)
    assert gpu.compute_capability == "applegpu_g15s"


def test_route_reports_node_accelerator_and_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    h100 = GPUDevice(id=0, name="NVIDIA H100", vendor="nvidia", total_memory_gb=80.0)
    monkeypatch.setattr(devices, "probe_gpus", lambda: [h100])
    client = TestClient(build_api(ScriptedEngine(), make_config(), metrics=Metrics(), created=1))
    answer = client.get("/v1/gpu/info")
    assert answer.status_code == 200
    assert answer.json() == {
        "gpus": [h100.model_dump()],
        "node": socket.gethostname(),
        "accelerator": "cpu",
    }
