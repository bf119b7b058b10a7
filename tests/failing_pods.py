"""Pods that cannot start, as the kubelet and the scheduler write their status (shapes and
messages copied from real clusters: containerd's pull errors, the kubelet's back-off, the
scheduler's summary). Shared by the unit tests of ``pod_failures`` and the kmock tests.
"""

from __future__ import annotations

from typing import Any

IMAGE = "ghcr.io/modelgrid/serving:0.1.0-cpu"
PULL_NOT_FOUND = (
    f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": failed to '
    f'resolve reference "{IMAGE}": {IMAGE}: not found'
)
NO_GPU = (
    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
    "available: 3 No preemption victims found for incoming pod."
)


def pod(
    name: str,
    *,
    model: str = "demo",
    cluster: str = "demo-cpu-c1",
    pool: str | None = "cpu",
    status: dict[str, Any],
    namespace: str = "default",
) -> dict[str, Any]:
    """A pod of the model's Ray cluster ``cluster``: a worker of ``pool``, or the head
    (``pool=None``: KubeRay's head carries no pool label, only its cluster's)."""
    labels = {
        "modelgrid.io/model": model,
        "ray.io/cluster": cluster,
        "ray.io/node-type": "worker" if pool else "head",
    }
    if pool:
        labels["modelgrid.io/pool"] = pool
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "status": status,
    }


def _scheduled() -> list[dict[str, Any]]:
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {
            "type": "Ready",
            "status": "False",
            "reason": "ContainersNotReady",
            "message": "containers with unready status: [ray-worker]",
        },
    ]


def _pending(
    containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A scheduled pod whose containers (and init containers, when given) have not all
    started."""
    status: dict[str, Any] = {"phase": "Pending", "conditions": _scheduled()}
    if init:
        status["initContainerStatuses"] = init
    return {**status, "containerStatuses": containers}


def _initializing(init_container: dict[str, Any]) -> dict[str, Any]:
    """A scheduled pod held back by an init container: the Ray container waits for it."""
    return _pending([waiting("ray-worker", "PodInitializing", "")], init=[init_container])


def waiting(container: str, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    """A container status waiting for ``reason``."""
    return {
        "name": container,
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "restartCount": extra.pop("restartCount", 0),
        "started": False,
        "state": {"waiting": {"reason": reason, "message": message}},
        "lastState": extra.pop("lastState", {}),
        **extra,
    }


def pulling_fails(reason: str = "ImagePullBackOff", container: str = "ray-worker") -> dict:
    """The status of a pod whose image cannot be pulled (ErrImagePull, then ImagePullBackOff
    between tries)."""
    message = (
        f'Back-off pulling image "{IMAGE}"' if reason == "ImagePullBackOff" else (PULL_NOT_FOUND)
    )
    return _pending([waiting(container, reason, message)])


def crash_looping(container: str = "ray-worker") -> dict[str, Any]:
    """A container restarted after it was OOM-killed."""
    return {
        "phase": "Running",
        "conditions": _scheduled(),
        "containerStatuses": [
            waiting(
                container,
                "CrashLoopBackOff",
                f"back-off 5m0s restarting failed container={container} "
                "pod=demo-cpu-c1-worker-x7k2p_default(6f1c0d3e-0b5e-4c1e-9d1a-0c3a5c7d9e11)",
                restartCount=6,
                lastState={
                    "terminated": {
                        "exitCode": 137,
                        "reason": "OOMKilled",
                        "startedAt": "2026-01-01T00:04:00Z",
                        "finishedAt": "2026-01-01T00:04:31Z",
                    }
                },
            )
        ],
    }


def unschedulable(message: str = NO_GPU) -> dict[str, Any]:
    """A pod no node fits, as the scheduler leaves it."""
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "qosClass": "Burstable",
    }


def init_failed(container: str = "generate-model", message: str = "") -> dict[str, Any]:
    """An init container that exited 1, before the kubelet restarts it."""
    ended = {"exitCode": 1, "reason": "Error", "startedAt": "2026-01-01T00:00:05Z"}
    if message:
        ended["message"] = message
    return _initializing(
        {
            "name": container,
            "image": IMAGE,
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"terminated": ended},
            "lastState": {},
        }
    )


def init_crash_looping(container: str = "generate-model") -> dict[str, Any]:
    """An init container that keeps exiting 1: the kubelet backs off restarting it."""
    return _initializing(
        waiting(
            container,
            "CrashLoopBackOff",
            f"back-off 40s restarting failed container={container} pod=demo-cpu-c1-w_default",
            restartCount=3,
            lastState={"terminated": {"exitCode": 1, "reason": "Error"}},
        )
    )


def config_missing(container: str = "ray-worker") -> dict[str, Any]:
    """A container whose environment names a Secret that does not exist."""
    return _pending(
        [waiting(container, "CreateContainerConfigError", 'secret "hf-token" not found')]
    )


def starting() -> dict[str, Any]:
    """A pod on its way: scheduled, its image being pulled."""
    return _pending([waiting("ray-worker", "ContainerCreating", "")])
