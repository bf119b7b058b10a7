"""Pod Security Standards "restricted" for every rendered pod.

Each pod runs as a numeric non-root user with the runtime's default seccomp profile; each
container (head, workers, the MLX sidecar, init containers) drops every capability, cannot
escalate and has a read-only root file system. What the engines write goes to ``emptyDir``s:

- ``/tmp``: Ray's session directory (``/tmp/ray``: sockets, logs, spilled objects), vLLM's RPC
  sockets (``tempfile.gettempdir()``), torch inductor's cache.
- ``HOME_PATH`` (``$HOME``, ``$XDG_CACHE_HOME``, ``$XDG_CONFIG_HOME``): vLLM's cache and config
  roots (``~/.cache/vllm``, ``~/.config/vllm``), triton's ``~/.triton``, any tool that writes
  under the home directory. Its own directory, so it never hides software an image installed
  under the image user's home (``/home/ray/anaconda3`` in Ray's images).
- Hugging Face's ``HF_HOME`` is the model cache volume (:mod:`.pods`).

No container gets a service account token: Ray, vLLM and mlx-lm never call the Kubernetes API.
The one that does, KubeRay's autoscaler sidecar on the head of an autoscaled model, mounts the
head's ``API_ACCESS_VOLUME`` alone (:mod:`.rayservice`).
"""

from __future__ import annotations

from typing import Any

from modelgrid_operator.settings import RenderSettings

TMP_VOLUME = "tmp"
HOME_VOLUME = "home"
HOME_PATH = "/home/modelgrid"
API_ACCESS_VOLUME = "kube-api-access"
API_ACCESS_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def pod_security_context(settings: RenderSettings) -> dict[str, Any]:
    """The pod-level part: who runs, which group owns volumes, which seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_group,
        "fsGroup": settings.fs_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """The container-level part, the same for every container (a fresh dict each call)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def writable_volumes() -> list[dict[str, Any]]:
    """The pod's scratch volumes (see the module docstring)."""
    return [{"name": TMP_VOLUME, "emptyDir": {}}, {"name": HOME_VOLUME, "emptyDir": {}}]


def writable_mounts() -> list[dict[str, Any]]:
    """Every container mounts both scratch volumes."""
    return [
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
        {"name": HOME_VOLUME, "mountPath": HOME_PATH},
    ]


def writable_env() -> list[dict[str, str]]:
    """Point home, cache and config directories at the writable home volume."""
    return [
        {"name": "HOME", "value": HOME_PATH},
        {"name": "XDG_CACHE_HOME", "value": f"{HOME_PATH}/.cache"},
        {"name": "XDG_CONFIG_HOME", "value": f"{HOME_PATH}/.config"},
    ]


def api_access_volume() -> dict[str, Any]:
    """What Kubernetes would mount into every container of a pod with the token automounted
    (token, the cluster's CA, the namespace), as a volume for the one container that calls the
    API. ``expirationSeconds: 3607`` is the value of the automounted token: kubelet refreshes
    the file before it expires, and Ray's KubeRay client rereads it every minute."""
    return {
        "name": API_ACCESS_VOLUME,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        },
    }


def api_access_mount() -> dict[str, Any]:
    """The token where Kubernetes clients look for it in a pod (Ray's ``IN_CLUSTER_TOKEN_PATH``
    and ``IN_CLUSTER_CA_CERT_PATH``)."""
    return {"name": API_ACCESS_VOLUME, "mountPath": API_ACCESS_PATH, "readOnly": True}


def harden(pod: dict[str, Any], settings: RenderSettings) -> dict[str, Any]:
    """Add the security contexts and the scratch volumes to a rendered pod template.

    Applied once to each pod after it is built, so no container of any pod can be left out.
    """
    spec = pod["spec"]
    spec["securityContext"] = pod_security_context(settings)
    spec["automountServiceAccountToken"] = False
    spec["volumes"] = [*writable_volumes(), *spec.get("volumes", [])]
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        container["securityContext"] = container_security_context()
        container["volumeMounts"] = [*writable_mounts(), *container.get("volumeMounts", [])]
        container["env"] = [*writable_env(), *container.get("env", [])]
    return pod
