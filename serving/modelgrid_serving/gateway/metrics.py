"""The gateway's Prometheus metrics, all named ``modelgrid_gateway_*``.

A separate prefix from the replicas' ``modelgrid_*`` families: both land in one Prometheus, and a
request counted at the gateway and again at its replica must not add up. Labels are bounded:
model (served canonical names), route, status, pool, key name (never the key).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)


class GatewayMetrics:
    """The metric families of one gateway process, in their own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "modelgrid_gateway_requests",
            "Requests answered, by model, route and status code (499: client went away).",
            ["model", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "modelgrid_gateway_request_duration_seconds",
            "Time from request to last byte, through the gateway.",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "modelgrid_gateway_time_to_first_token_seconds",
            "Time from request to the first streamed event.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "modelgrid_gateway_in_flight_requests",
            "Requests being proxied now.",
            ["model", "pool"],
            registry=r,
        )
        self.tokens = Counter(
            "modelgrid_gateway_tokens",
            "Tokens served (from the backend's usage, else estimated), by kind.",
            ["model", "kind"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "modelgrid_gateway_upstream_errors",
            "Backend failures: connect (retried), stream (broken mid-response), timeout.",
            ["model", "pool", "kind"],
            registry=r,
        )
        self.rate_limited = Counter(
            "modelgrid_gateway_rate_limited",
            "Requests refused with 429, by key name and limit (requests, tokens).",
            ["key", "limit"],
            registry=r,
        )
        self.rejected = Counter(
            "modelgrid_gateway_rejected",
            "Requests refused before any backend: reason is the error code.",
            ["reason"],
            registry=r,
        )
        self.backends_ready = Gauge(
            "modelgrid_gateway_backends_ready",
            "Ready backends per model.",
            ["model"],
            registry=r,
        )

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
