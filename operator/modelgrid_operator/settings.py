"""Operator settings: the cluster-specific knobs that are not part of an InferenceModel.

Renderers take a :class:`RenderSettings` argument instead of reading the environment, so tests
pass settings in and the same spec always renders the same objects. Only :func:`from_env`
reads the environment, once, when the operator starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelgrid_serving.config import Port
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelgrid_operator import __version__
from modelgrid_operator.ray_ports import (
    DASHBOARD_AGENT_PORT,
    RAY_METRICS_PORT,
    RAY_PORTS,
    REPLICA_METRICS_PORT_NAME,
)


@dataclass(frozen=True)
class _FixedSize:
    """A container that modelgrid sizes itself rather than from a pool's resources. Its methods
    make its CPU request, CPU limit and memory (request and limit) fields of
    :class:`RenderSettings` (``render.pods`` renders the three as one), described alike for every
    such container; ``load`` says what loads it."""

    container: str
    load: str

    def cpu(self, default: str) -> Any:
        return Field(default=default, description=f"CPU request of {self.container} ({self.load}).")

    def cpu_limit(self, default: str) -> Any:
        return Field(default=default, description=f"CPU limit of {self.container}.")

    def memory(self, default: str) -> Any:
        return Field(default=default, description=f"Memory request and limit of {self.container}.")


_HEAD = _FixedSize(
    "the Ray head container",
    load="GCS, dashboard, Serve controller: bursts while applications deploy, idle otherwise",
)
_APPLE_WORKER = _FixedSize(
    "the Ray worker on Apple nodes",
    load="it proxies to the MLX sidecar and runs the tokenizer; the engine is the sidecar",
)


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
        description="Image of the Ray worker on Apple nodes (linux/arm64: Ray + "
        "modelgrid_serving with torch for the built-in model's init container; no engine).",
    )
    mlx_image: str = Field(
        default=f"ghcr.io/modelgrid/mlx-server:{__version__}",
        description="Image of the MLX server sidecar on Apple nodes (modelgrid's MLX "
        "generation server on mlx-lm and llguidance).",
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
    metrics_port: Port = Field(
        default=8090,
        description="Port of each Serve replica's Prometheus metrics in its worker pod (port "
        f"name `{REPLICA_METRICS_PORT_NAME}`, what the chart's PodMonitor scrapes). Not "
        f"{RAY_METRICS_PORT}: that is Ray's own metrics port (KubeRay's port `metrics`).",
    )
    model_cache_path: str = Field(
        default="/models", description="Where model volumes are mounted inside pods."
    )
    head_cpu: str = _HEAD.cpu("1")
    head_cpu_limit: str = _HEAD.cpu_limit("2")
    head_memory: str = _HEAD.memory("4Gi")
    engine_cpu: str = Field(
        default="2",
        description="CPU request of a pool's engine container (vLLM's Ray worker, the MLX "
        "sidecar) when `pool.resources` names none (docs/operator.md#resources).",
    )
    engine_memory: str = Field(
        default="8Gi",
        description="Memory request of a pool's engine container when `pool.resources` names "
        "none and no memory limit either.",
    )
    apple_worker_cpu: str = _APPLE_WORKER.cpu("1")
    apple_worker_cpu_limit: str = _APPLE_WORKER.cpu_limit("2")
    apple_worker_memory: str = _APPLE_WORKER.memory("2Gi")

    # Updates of a pool's Ray cluster (docs/operator.md#what-a-change-costs).
    upgrade_surge_limit: int = Field(
        default=4,
        ge=0,
        description="Most accelerators (GPUs, Apple nodes) a pool may hold twice while a "
        "changed Ray cluster starts beside the serving one (KubeRay's `NewCluster` upgrade). A "
        "pool that would need more is replaced in place (`None`): its old cluster is deleted "
        "first, and the pool does not serve until the new one is ready.",
    )
    upgrade_deadline_seconds: int = Field(
        default=900,
        ge=1,
        description="Seconds a new Ray cluster of a pool may take to serve before the model "
        "reports `Progressing=False, ProgressDeadlineExceeded` with what is missing (the "
        "serving cluster keeps serving meanwhile).",
    )

    pod_failure_deadline_seconds: int = Field(
        default=300,
        ge=1,
        description="Seconds a pod of a model may fail to start (image pull, crash loop, "
        "unschedulable, init container, container config) before the model's phase turns "
        "`Failed` (`Degraded` while another pool serves); until then the phase stays where it "
        "was and the Ready condition says why (docs/operator.md#when-pods-cannot-start). Counted "
        "from when the failure was first seen, kept in the status across operator restarts.",
    )

    # Pod security (Pod Security Standards "restricted"; docs/operator.md#security).
    run_as_user: int = Field(
        default=10001,
        ge=1,
        description="Numeric uid every rendered container runs as (never 0: runAsNonRoot "
        "needs a number to check). Above 10000, so it is no user of the node's own (the "
        "chart's pods use the same). The serving images create this user.",
    )
    run_as_group: int = Field(default=10001, ge=0, description="Numeric gid of the containers.")
    fs_group: int = Field(
        default=10001, ge=0, description="Group that owns mounted volumes (PVCs, emptyDirs)."
    )
    allowed_host_paths: tuple[str, ...] = Field(
        default=(),
        description="Absolute directories on the nodes under which `spec.model.uri` may name a "
        "path (mounted as a read-only hostPath). Default: none, so no tenant reads a node's "
        "files; a hostPath also takes the pod out of Pod Security `restricted`.",
    )
    allowed_toleration_keys: tuple[str, ...] = Field(
        default=("nvidia.com/gpu", "virtual-kubelet.io/provider", "modelgrid.io/*"),
        description="Taint keys a pool's `tolerations` may name: exact keys, or prefixes ending "
        "in `*`. A toleration without a key (which tolerates every taint) is never allowed. "
        "The default lets pools onto GPU and Apple nodes and nodes tainted `modelgrid.io/...`, "
        "never onto control-plane nodes.",
    )
    allowed_node_selector_keys: tuple[str, ...] = Field(
        default=(
            "kubernetes.io/arch",
            "kubernetes.io/os",
            "node.kubernetes.io/instance-type",
            "topology.kubernetes.io/*",
            "nvidia.com/*",
            "modelgrid.io/*",
        ),
        description="Node labels a pool's `nodeSelector` may name: exact keys, or prefixes ending "
        "in `*`. The default covers architecture, instance type, zone, NVIDIA feature discovery "
        "and modelgrid's own labels, not `node-role.kubernetes.io/*`.",
    )
    allowed_engine_args: tuple[str, ...] = Field(
        default=(),
        description="Engine arguments of `engineArgs.extraArgs` that run code or reach beyond the "
        "pod (see `policy.RISKY_ENGINE_ARGS`, e.g. `trust_remote_code`) which tenants may set "
        "anyway. Default: none.",
    )

    # Network (the NetworkPolicy each model gets).
    dashboard_host: str = Field(
        default="0.0.0.0",
        description="Where the Ray head's dashboard listens. KubeRay's operator reads and "
        "writes the Serve applications through it (the head Service, port `dashboard`), so it "
        "must be reachable from KubeRay's pods; the model's NetworkPolicy admits only those.",
    )
    gateway_namespace: str = Field(
        default="modelgrid-system",
        description="Namespace of the gateway pods, the only clients of a model's Serve port "
        "besides the model's own pods (the chart sets its release namespace).",
    )
    gateway_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {
            "app.kubernetes.io/name": "modelgrid",
            "app.kubernetes.io/component": "gateway",
        },
        description="Labels that select the gateway pods (the chart sets its own selector).",
    )
    kuberay_namespace: str = Field(
        default="kuberay-system",
        description="Namespace of KubeRay's operator, admitted to the head's dashboard port.",
    )
    kuberay_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "kuberay-operator"},
        description="Labels of KubeRay's operator pods (its Helm chart's).",
    )
    metrics_namespace: str | None = Field(
        default=None,
        description="Namespace whose pods may scrape the replicas' metrics port (Prometheus, "
        "when the chart's PodMonitor is on). Default: none.",
    )

    @model_validator(mode="after")
    def _ports_are_distinct(self) -> RenderSettings:
        """A Ray worker's ports must not collide: two listeners on one port fail at start, and
        a replica's metrics on Ray's 8080 would be scraped as Ray's (KubeRay's port
        ``metrics``)."""
        ray_ports = {
            RAY_METRICS_PORT: "Ray's own metrics port (metrics-export-port, KubeRay's `metrics`)",
            DASHBOARD_AGENT_PORT: "Ray's dashboard agent",
            **{port: f"Ray's {name} port" for name, port in RAY_PORTS},
        }
        ours = {
            "serve_port": self.serve_port,
            "metrics_port": self.metrics_port,
            "mlx_port": self.mlx_port,
        }
        for field, port in ours.items():
            if port in ray_ports:
                raise ValueError(f"{field} {port} is {ray_ports[port]}: choose another port")
        if len(set(ours.values())) != len(ours):
            raise ValueError(f"serve_port, metrics_port and mlx_port must differ: {ours}")
        return self


ENV_PREFIX = "MODELGRID_"


def _structured(name: str) -> bool:
    """Fields holding lists or maps: their variables hold JSON (``["/models"]``)."""
    default = RenderSettings.model_fields[name].get_default(call_default_factory=True)
    return isinstance(default, tuple | list | dict)


def from_env(environ: Mapping[str, str] | None = None) -> RenderSettings:
    """Settings from ``MODELGRID_<FIELD>`` variables (e.g. ``MODELGRID_CUDA_IMAGE``); lists and
    maps are JSON (``MODELGRID_ALLOWED_HOST_PATHS='["/models"]'``).

    Raises:
        ValueError: a list or map variable that is not JSON, naming the variable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name in RenderSettings.model_fields:
        variable = ENV_PREFIX + name.upper()
        if variable not in environ:
            continue
        values[name] = environ[variable]
        if _structured(name):
            try:
                values[name] = json.loads(environ[variable])
            except json.JSONDecodeError as exc:
                raise ValueError(f"{variable} must be JSON (a list or a map): {exc}") from None
    return RenderSettings(**values)
