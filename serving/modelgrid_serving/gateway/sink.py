"""The one place every proxied request reports to when it ends: the stats counters, the metrics,
the live figures, and the settlement of the key's token reservation.

The proxy path itself counts nothing: a request refused before any backend is reported with
:meth:`Sink.rejected` / :meth:`Sink.refused`, one that was relayed with :meth:`Sink.finished`.
A new per-request concern is one more recorder here (:data:`Recorder`, registered where the
gateway is assembled, :mod:`.state`), not another attribute the proxy path updates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..errors import APIError
from .auth import KeyPolicy
from .exchange import Exchange
from .limits import RateLimiter
from .metrics import GatewayMetrics
from .proxy import estimate_prompt_tokens

Recorder = Callable[[Exchange], None]
"""Told each request that was relayed (whatever its status), in registration order."""


class Sink:
    """Where every proxied request is accounted for.

    Args:
        metrics: The Prometheus families (refusals, answers).
        limiter: Settles each key's token reservation to the request's real usage.
        recorders: Told each relayed request (:data:`Recorder`).
    """

    __slots__ = ("_limiter", "_metrics", "_recorders")

    def __init__(
        self, metrics: GatewayMetrics, limiter: RateLimiter, recorders: Sequence[Recorder]
    ) -> None:
        self._metrics = metrics
        self._limiter = limiter
        self._recorders = tuple(recorders)

    def rejected(self, policy: KeyPolicy, exc: APIError) -> None:
        """A request refused by a check (before its error is sent)."""
        if exc.status_code == 429:
            self._metrics.rate_limited_total.labels(policy.name, exc.type).inc()
        self._metrics.rejected_total.labels(exc.code or exc.type).inc()

    def refused(self, model: str, route: str, status: int) -> None:
        """A request answered before any backend: an error, or a client that went away (499)."""
        self._metrics.refused(model, route, status)

    def finished(self, x: Exchange, status: int | None) -> None:
        """An admitted request has ended: ``status`` is what it was answered with (``None``: it
        broke off with an exception, and only its reservation is settled, to nothing)."""
        used = 0  # what the reservation settles to; nothing for a request that broke off
        try:
            if status is not None:
                x.status = status
                x.duration_s = time.perf_counter() - x.started
                x.ended = time.monotonic()
                prompt, completion = x.usage or (estimate_prompt_tokens(x.body), x.events)
                x.prompt_tokens, x.completion_tokens = prompt, completion
                for record in self._recorders:
                    record(x)
                used = prompt + completion
        finally:
            self._limiter.settle(x.policy, reserved=x.reserved, used=used, now=time.monotonic())
