"""A checker for the Pod Security Standards "restricted" profile, as written in Kubernetes'
documentation (https://kubernetes.io/docs/concepts/security/pod-security-standards/), plus the
read-only root file system modelgrid asks of every container.

Pure and small on purpose: it reads one pod spec and names each rule a container or the pod
breaks, so a test can say which container of which pod lost which field.
"""

from __future__ import annotations

from typing import Any

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
"""The only volume types "restricted" allows (no hostPath, no in-tree network volumes)."""

SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def _seccomp_ok(context: dict[str, Any] | None) -> bool | None:
    """True/False when the context sets a profile, None when it leaves it to the pod."""
    profile = (context or {}).get("seccompProfile")
    if profile is None:
        return None
    return profile.get("type") in ("RuntimeDefault", "Localhost")


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Every "restricted" rule the pod spec breaks, as ``<where>: <rule>``; empty when none."""
    problems: list[str] = []
    pod_context = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"pod: {field} must not be true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)} is not allowed")
    for sysctl in pod_context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"pod: sysctl {sysctl.get('name')} is not allowed")
    if pod_context.get("runAsUser") == 0:
        problems.append("pod: runAsUser must not be 0")
    pod_seccomp = _seccomp_ok(pod_context)
    if pod_seccomp is False:
        problems.append("pod: seccompProfile must be RuntimeDefault or Localhost")

    containers = [
        *(("init container", c) for c in spec.get("initContainers") or []),
        *(("container", c) for c in spec.get("containers") or []),
        *(("ephemeral container", c) for c in spec.get("ephemeralContainers") or []),
    ]
    for kind, container in containers:
        where = f"{kind} {container.get('name')}"
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            problems.append(f"{where}: privileged must not be true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}: capabilities must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: capabilities may add only NET_BIND_SERVICE")
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{where}: runAsNonRoot must be true (on the pod or the container)")
        if context.get("runAsUser") == 0:
            problems.append(f"{where}: runAsUser must not be 0")
        seccomp = _seccomp_ok(context)
        if seccomp is False or (seccomp is None and pod_seccomp is not True):
            problems.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        if context.get("procMount", "Default") != "Default":
            problems.append(f"{where}: procMount must be Default")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort {port['hostPort']} is not allowed")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem must be true (modelgrid's rule)")
    return problems
