"""Ray's well-known ports in a KubeRay pod, and the names KubeRay finds them by.

Kept apart from the renderers so that the operator's settings can refuse ports of their own
that would collide with these (``settings.RenderSettings``), without importing the renderers.
The numbers are KubeRay's defaults (``ray-operator/controllers/ray/utils/constant.go``, v1.6 and
v1.7); the renderers set each explicitly, so what runs is what ``modelgrid render`` shows.
"""

from __future__ import annotations

RAY_PORTS = (("gcs-server", 6379), ("dashboard", 8265), ("client", 10001))
"""The head's ports, by the names KubeRay's head Service exposes them under."""

DASHBOARD_AGENT_PORT = 52365
"""Ray's ``--dashboard-agent-listen-port``: the health endpoints KubeRay probes."""

RAY_METRICS_PORT = 8080
"""Ray's own Prometheus endpoint (``metrics-export-port``). KubeRay sets it to 8080 on every Ray
node unless ``rayStartParams`` name it (``setMissingRayStartParams`` in common/pod.go)."""

RAY_METRICS_PORT_NAME = "metrics"
"""The container port name KubeRay gives Ray's metrics (``utils.MetricsPortName``) and that
KubeRay-style monitors scrape; KubeRay adds a port of this name at 8080 only when none exists
(``DefaultHeadPodTemplate`` / ``DefaultWorkerPodTemplate``), so no other port may take it."""

REPLICA_METRICS_PORT_NAME = "replica-metrics"
"""The container port name of each Serve replica's own metrics (``settings.metrics_port``):
what the chart's PodMonitor scrapes."""
