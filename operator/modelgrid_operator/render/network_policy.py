"""InferenceModel -> its NetworkPolicy (networking.k8s.io/v1): who may reach the model's pods.

Ray's processes talk to each other on many ports (GCS 6379, client 10001, dashboard 8265, the
dashboard agent, object and node managers, worker ports from a range), so the model's own pods
get every port of each other, and nobody else gets any of Ray's. From outside the model:

- the gateway's pods reach the Serve port (``<model>-serve-svc``) and the replicas' metrics
  port; nothing else bypasses the gateway's keys, limits and body bound;
- KubeRay's operator pods reach the dashboard (KubeRay reads and writes the Serve
  applications through the head Service's ``dashboard`` port) and, for older KubeRay versions,
  the dashboard agent and the Serve proxy's health check;
- when ``metrics_namespace`` is set (Prometheus with the chart's PodMonitor), pods of that
  namespace reach the replicas' metrics port and Ray's own (8080, the port KubeRay names
  ``metrics``).

Pods are selected by the model label, which head and workers carry; a policy's ``podSelector``
alone matches pods of the model's own namespace only.
"""

from __future__ import annotations

from typing import Any

from modelgrid_operator import api
from modelgrid_operator.ray_ports import DASHBOARD_AGENT_PORT, RAY_METRICS_PORT, RAY_PORTS
from modelgrid_operator.render.metadata import MODEL_LABEL, Owner, child_metadata
from modelgrid_operator.settings import RenderSettings

NETWORKING_API_VERSION = "networking.k8s.io/v1"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace (Kubernetes 1.21+): selects a namespace by name."""

DASHBOARD_PORT = dict(RAY_PORTS)["dashboard"]


def network_policy_name(model_name: str) -> str:
    """The model's NetworkPolicy is named after the model."""
    return model_name


def _peer(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """Pods with ``labels`` in the namespace named ``namespace``."""
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
        "podSelector": {"matchLabels": dict(labels)},
    }


def _ports(*numbers: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": n} for n in numbers]


def render_network_policy(
    model: api.InferenceModel, *, settings: RenderSettings, owner: Owner | None = None
) -> dict[str, Any]:
    """Render the NetworkPolicy that closes the model's pods to all but their clients.

    Args:
        model: a validated InferenceModel.
        settings: the gateway's, KubeRay's and Prometheus's pods, and the ports.
        owner: the model's name and uid; when given, the policy is deleted with the model.

    Returns:
        The NetworkPolicy as a plain dict, ready to apply.
    """
    own_pods = {"podSelector": {"matchLabels": {MODEL_LABEL: model.name}}}
    ingress: list[dict[str, Any]] = [
        {"from": [own_pods]},
        {
            "from": [_peer(settings.gateway_namespace, settings.gateway_pod_labels)],
            "ports": _ports(settings.serve_port, settings.metrics_port),
        },
        {
            "from": [_peer(settings.kuberay_namespace, settings.kuberay_pod_labels)],
            "ports": _ports(DASHBOARD_PORT, DASHBOARD_AGENT_PORT, settings.serve_port),
        },
    ]
    if settings.metrics_namespace:
        ingress.append(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {NAMESPACE_NAME_LABEL: settings.metrics_namespace}
                        }
                    }
                ],
                "ports": _ports(settings.metrics_port, RAY_METRICS_PORT),
            }
        )
    return {
        "apiVersion": NETWORKING_API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": dict(child_metadata(model, network_policy_name(model.name), owner)),
        "spec": {
            "podSelector": {"matchLabels": {MODEL_LABEL: model.name}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
