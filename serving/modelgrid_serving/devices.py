"""What accelerators a replica sees, for ``GET /v1/gpu/info``.

NVIDIA GPUs are read through NVML (``pynvml``, which the CUDA build of vLLM depends on), not
through torch: ``torch.cuda`` would create a CUDA context in the replica process, which costs
hundreds of MiB of the GPU memory the engine was promised. Apple GPUs are read through MLX's
Metal API where MLX runs natively on macOS. On a machine with neither the list is empty: the
answer still says which node and accelerator the replica runs on.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from .protocol import GPUDevice

logger = logging.getLogger(__name__)

_GIB = 1024**3


def probe_gpus() -> list[GPUDevice]:
    """Every GPU this process can see (NVIDIA first, then Apple); empty when none.

    Blocking (NVML calls): run it in a thread from async code.
    """
    return _nvidia() or _apple()


def node_name() -> str:
    """The host (in Kubernetes: the pod) the replica runs on."""
    return socket.gethostname()


def _nvidia() -> list[GPUDevice]:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # no driver, or no device visible to this container
        logger.debug("NVML unavailable: %s", exc)
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = _cuda_version(pynvml.nvmlSystemGetCudaDriverVersion)
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            devices.append(
                GPUDevice(
                    id=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    vendor="nvidia",
                    total_memory_gb=round(memory.total / _GIB, 2),
                    free_memory_gb=round(memory.free / _GIB, 2),
                    compute_capability=f"{major}.{minor}",
                    driver_version=driver,
                    cuda_version=cuda,
                )
            )
        return devices
    finally:
        pynvml.nvmlShutdown()


def _apple() -> list[GPUDevice]:
    try:
        import mlx.core as mx
    except ImportError:
        return []
    if not mx.metal.is_available():  # mlx[cpu] on Linux
        return []
    info: dict[str, Any] = dict(mx.metal.device_info())
    total = float(info.get("memory_size", 0)) / _GIB
    return [
        GPUDevice(
            id=0,
            name=str(info.get("device_name") or info.get("architecture") or "Apple GPU"),
            vendor="apple",
            total_memory_gb=round(total, 2),
            free_memory_gb=None,
            compute_capability=str(info["architecture"]) if "architecture" in info else None,
        )
    ]


def _cuda_version(read: Callable[[], int]) -> str | None:
    """NVML gives the CUDA version the driver supports as 1000*major + 10*minor."""
    try:
        version = int(read())
    except Exception:  # noqa: BLE001 - an old driver without this call: leave it out
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


def _text(value: str | bytes) -> str:
    """NVML bindings return bytes in older versions, str in newer ones."""
    return value.decode() if isinstance(value, bytes) else value
