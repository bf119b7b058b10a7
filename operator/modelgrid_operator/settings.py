"""Operator settings: the cluster-specific knobs that are not part of an InferenceModel.

Renderers take a :class:`RenderSettings` argument instead of reading the environment, so tests
pass settings in and the same spec always renders the same objects. Only :func:`from_env`
reads the environment, once, when the operator starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from modelgrid_operator import __version__


class RenderSettings(BaseModel):
    """What the renderers need to know about the cluster and the release."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ray_version: str = Field(default="2.60.0", description="Ray version of the serving images.")
    cuda_image: str = Field(
        default=f"ghcr.io/modelgrid/serving:{__version__}-cuda",
        description="Image of head and NVIDIA workers: Ray + vLLM (CUDA) + modelgrid_serving.",
    )
    cpu_image: str = Field(
        default=f"ghcr.io/modelgrid/serving:{__version__}-cpu",
        description="Image of CPU workers (vLLM CPU build) and the head of non-NVIDIA models.",
    )
    apple_image: str = Field(
        default=f"ghcr.io/modelgrid/serving:{__version__}-apple",
        description="Image of the Ray worker on Apple nodes (arm64, no engine inside).",
    )
    mlx_image: str = Field(
        default=f"ghcr.io/modelgrid/mlx-server:{__version__}",
        description="Image of the MLX server sidecar on Apple nodes (mlx-lm's server).",
    )
    apple_node_label: str = Field(
        default="modelgrid.io/accelerator",
        description="Node label (value `apple`) that marks Apple silicon nodes.",
    )
    apple_tolerations_key: str = Field(
        default="virtual-kubelet.io/provider",
        description="Taint key that virtual-kubelet style macOS nodes carry.",
    )
    gpu_node_label: str = Field(
        default="nvidia.com/gpu.present",
        description="Node label (value `true`) set by NVIDIA GPU feature discovery.",
    )
    mlx_port: int = Field(default=8081, description="Port of the MLX sidecar inside the pod.")
    serve_port: int = Field(default=8000, description="Port of the Serve HTTP proxy.")
    metrics_port: int = Field(
        default=8090,
        description="Port of each Serve replica's Prometheus metrics in its worker pod (port "
        "name `metrics`, what the chart's PodMonitor scrapes).",
    )
    model_cache_path: str = Field(
        default="/models", description="Where model volumes are mounted inside pods."
    )
    head_cpu: str = "1"
    head_memory: str = "4Gi"


ENV_PREFIX = "MODELGRID_"


def from_env(environ: Mapping[str, str] | None = None) -> RenderSettings:
    """Settings from ``MODELGRID_<FIELD>`` variables (e.g. ``MODELGRID_CUDA_IMAGE``)."""
    environ = os.environ if environ is None else environ
    values = {
        name: environ[ENV_PREFIX + name.upper()]
        for name in RenderSettings.model_fields
        if ENV_PREFIX + name.upper() in environ
    }
    return RenderSettings(**values)
