"""The gateway's Prometheus metrics: the ``modelgrid_gateway_*`` families of the vocabulary
(:mod:`modelgrid_serving.metrics`, which says why the gateway and the replicas do not share
names). Labels are bounded: model (served canonical names), pool, route, status, key name (the
``name`` configured for a key, never the key, and only once the key was recognised). A request
refused before any backend has ``pool="-"``; one refused before its model is known, ``model="-"``.

They are served by :class:`MetricsApp` on a port of their own: key names and per-model traffic
are for the operator's Prometheus, not for whoever reaches the API (the chart's Ingress routes
only the API port).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import MethodNotAllowed, RouteNotFound
from ..metrics import CONTENT_TYPE, GATEWAY, MetricFamilies
from .asgi import Receive, Scope, Send, send_body, send_error

if TYPE_CHECKING:
    from .exchange import Exchange
    from .routing import RoutingTable

__all__ = ["CONTENT_TYPE", "NO_POOL", "GatewayMetrics", "MetricsApp"]

NO_POOL = "-"
"""The pool label of requests that reached no backend."""


class GatewayMetrics(MetricFamilies):
    """The metric families of one gateway process (the ``GATEWAY`` vocabulary)."""

    def __init__(self) -> None:
        super().__init__(GATEWAY)
        # Label children per label values, looked up once: ``labels()`` validates its arguments
        # and takes a lock on every call, which the hot path would pay several times a request.
        # Never pruned: the label values are bounded (see the module docstring), and Prometheus
        # keeps every series it has seen anyway.
        self._answered: dict[tuple[str, str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._in_flight: dict[tuple[str, str], Any] = {}
        self._ttft: dict[tuple[str, str], Any] = {}

    def in_flight_for(self, model: str, pool: str) -> Any:
        """The in-flight gauge of ``(model, pool)``."""
        gauge = self._in_flight.get((model, pool))
        if gauge is None:
            gauge = self._in_flight[model, pool] = self.requests_in_flight.labels(model, pool)
        return gauge

    def ttft_for(self, model: str, pool: str) -> Any:
        """The time-to-first-token histogram of ``(model, pool)``."""
        histogram = self._ttft.get((model, pool))
        if histogram is None:
            histogram = self._ttft[model, pool] = self.time_to_first_token_seconds.labels(
                model, pool
            )
        return histogram

    def refused(self, model: str, route: str, status: int | str) -> None:
        """A request answered before any backend (an error, or the client went away)."""
        self.requests_total.labels(model, NO_POOL, route, str(status)).inc()

    def finished(self, x: Exchange) -> None:
        """A request that went to a backend (``x.pool``), whatever the outcome (a recorder
        of the sink)."""
        model, pool, route, status = key = (x.model, x.pool, x.route, x.status)
        series = self._answered.get(key)
        if series is None:
            series = self._answered[key] = (
                self.requests_total.labels(model, pool, route, str(status)),
                self.request_duration_seconds.labels(model, pool, route),
                self.prompt_tokens_total.labels(model, pool),
                self.generation_tokens_total.labels(model, pool),
            )
        requests, duration, prompt, generation = series
        requests.inc()
        duration.observe(x.duration_s)
        prompt.inc(x.prompt_tokens)
        generation.inc(x.completion_tokens)

    def count_ready_backends(self, table: RoutingTable) -> None:
        """Each model's ready backends in a new routing table (a listener of the catalog)."""
        for name, route in table.routes.items():
            if name == route.model:
                self.backends_ready.labels(name).set(len(route.backends))


class MetricsApp:
    """The ASGI application of the metrics port: ``GET /metrics`` and nothing else."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            await send_error(send, RouteNotFound(f"No route {scope['method']} {scope['path']}."))
        elif scope["method"] not in ("GET", "HEAD"):
            await send_error(send, MethodNotAllowed("/metrics: use GET."), [(b"allow", b"GET")])
        else:
            headers = [(b"content-type", CONTENT_TYPE.encode())]
            await send_body(send, 200, self.metrics.render(), headers)
