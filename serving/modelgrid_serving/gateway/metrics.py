"""The gateway's Prometheus metrics: the ``modelgrid_gateway_*`` families of the vocabulary
(:mod:`modelgrid_serving.metrics`, which says why the gateway and the replicas do not share
names). Labels are bounded: model (served canonical names), pool, route, status, key name (never
the key). A request refused before any backend has ``pool="-"``; one refused before its model is
known, ``model="-"``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from ..metrics import CONTENT_TYPE, GATEWAY, build_families

__all__ = ["CONTENT_TYPE", "NO_POOL", "GatewayMetrics"]

NO_POOL = "-"
"""The pool label of requests that reached no backend."""


class GatewayMetrics:
    """The metric families of one gateway process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        f = build_families(GATEWAY, self.registry)
        self.requests = f["requests_total"]
        self.duration = f["request_duration_seconds"]
        self.ttft = f["time_to_first_token_seconds"]
        self.prompt_tokens = f["prompt_tokens_total"]
        self.generation_tokens = f["generation_tokens_total"]
        self.in_flight = f["requests_in_flight"]
        self.upstream_errors = f["upstream_errors_total"]
        self.rejected = f["rejected_total"]
        self.rate_limited = f["rate_limited_total"]
        self.backends_ready = f["backends_ready"]

    def refused(self, model: str, route: str, status: int | str) -> None:
        """A request answered before any backend (an error, or the client went away)."""
        self.requests.labels(model, NO_POOL, route, str(status)).inc()

    def answered(
        self,
        model: str,
        pool: str,
        route: str,
        status: int,
        seconds: float,
        prompt_tokens: int,
        generation_tokens: int,
    ) -> None:
        """A request that went to a backend (``pool``), whatever the outcome."""
        self.requests.labels(model, pool, route, str(status)).inc()
        self.duration.labels(model, pool, route).observe(seconds)
        self.prompt_tokens.labels(model, pool).inc(prompt_tokens)
        self.generation_tokens.labels(model, pool).inc(generation_tokens)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
