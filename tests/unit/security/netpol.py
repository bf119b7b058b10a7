"""Which connections a set of NetworkPolicies admits, as the Kubernetes documentation defines
it (https://kubernetes.io/docs/concepts/services-networking/network-policies/): a pure
evaluator for ingress, so a test can ask "may this pod open that port?" of rendered objects.

- A pod no ingress policy selects accepts everything.
- A selected pod accepts a connection that any rule of any selecting policy admits (policies
  add up); a rule admits when its ports (absent: all) include the port and one of its peers
  (``from`` absent or empty: everyone) matches the source.
- A peer with only ``podSelector`` means pods of the policy's own namespace; with
  ``namespaceSelector`` the namespaces it selects (``kubernetes.io/metadata.name`` is the
  name label every namespace carries).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Pod:
    """A pod on the cluster network: where it is and what labels it carries."""

    namespace: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {NAME_LABEL: self.namespace}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector against a label set (``{}`` selects everything)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: dict[str, Any], source: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False  # pod-to-pod traffic is judged by selectors here
    namespaces = peer.get("namespaceSelector")
    if namespaces is None:
        in_namespace = source.namespace == policy_namespace
    else:
        in_namespace = selects(namespaces, source.namespace_labels)
    pods = peer.get("podSelector")
    return in_namespace and (pods is None or selects(pods, source.labels))


def _port_matches(ports: list[dict[str, Any]] | None, port: int) -> bool:
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == "TCP"
        and (p.get("port") is None or p["port"] <= port <= p.get("endPort", p["port"]))
        for p in ports
    )


def admits(policies: Iterable[dict[str, Any]], *, source: Pod, target: Pod, port: int) -> bool:
    """Whether ``source`` may open TCP ``port`` on ``target`` under ``policies``."""
    selecting = [
        p
        for p in policies
        if p["kind"] == "NetworkPolicy"
        and p["metadata"]["namespace"] == target.namespace
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], target.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            if not _port_matches(rule.get("ports"), port):
                continue
            peers = rule.get("from")
            if not peers or any(
                _peer_matches(peer, source, policy["metadata"]["namespace"]) for peer in peers
            ):
                return True
    return False
