"""Prometheus metrics of one replica, all named ``modelgrid_*``.

Measured where the replica answers HTTP, so they include our own overhead and mean the same for
every engine. "Queued" means accepted but no token yet (waiting in the engine's scheduler or
prefilling); "running" means producing tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ITL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


@dataclass
class Metrics:
    """The metric families of one replica, in their own registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "modelgrid_requests",
            "Requests answered, by route and status code.",
            ["model", "route", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "modelgrid_request_duration_seconds",
            "Time from request to last byte.",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "modelgrid_time_to_first_token_seconds",
            "Time from request to first streamed token.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "modelgrid_inter_token_latency_seconds",
            "Time between streamed chunks.",
            ["model"],
            buckets=_ITL_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "modelgrid_prompt_tokens", "Prompt tokens processed.", ["model"], registry=r
        )
        self.generation_tokens = Counter(
            "modelgrid_generation_tokens", "Tokens generated.", ["model"], registry=r
        )
        self.running = Gauge(
            "modelgrid_requests_running", "Requests producing tokens now.", ["model"], registry=r
        )
        self.queued = Gauge(
            "modelgrid_requests_queued",
            "Requests accepted that have no token yet.",
            ["model"],
            registry=r,
        )

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    def track(self, model: str, route: str) -> RequestTracker:
        """Start tracking one request."""
        return RequestTracker(self, model, route)


class RequestTracker:
    """Follows one request from arrival to its last byte; moves it from queued to running."""

    __slots__ = ("_last", "_m", "_model", "_route", "_start", "_state")

    def __init__(self, metrics: Metrics, model: str, route: str) -> None:
        self._m, self._model, self._route = metrics, model, route
        self._start = self._last = time.perf_counter()
        self._state = "queued"
        metrics.queued.labels(model).inc()

    def token(self) -> None:
        """A chunk with tokens went out."""
        now = time.perf_counter()
        if self._state == "queued":
            self._m.queued.labels(self._model).dec()
            self._m.running.labels(self._model).inc()
            self._m.ttft.labels(self._model).observe(now - self._start)
            self._state = "running"
        else:
            self._m.itl.labels(self._model).observe(now - self._last)
        self._last = now

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Token counts the engine reported."""
        self._m.prompt_tokens.labels(self._model).inc(prompt_tokens)
        self._m.generation_tokens.labels(self._model).inc(completion_tokens)

    def done(self, status: int) -> None:
        """The request ended (any way). Idempotent."""
        if self._state == "done":
            return
        gauge = self._m.queued if self._state == "queued" else self._m.running
        gauge.labels(self._model).dec()
        self._state = "done"
        self._m.requests.labels(self._model, self._route, str(status)).inc()
        self._m.request_duration.labels(self._model, self._route).observe(
            time.perf_counter() - self._start
        )
