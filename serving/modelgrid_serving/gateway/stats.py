"""``GET /v1/stats``: per model its pools, backends, load and what it served.

The counters are fed by the sink (:meth:`Stats.count` is one of its recorders); the rest is read
at call time from the catalog and the balancer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .balancer import Balancer
from .catalog import Catalog
from .routing import Backend, ModelEntry, Route

if TYPE_CHECKING:
    from .exchange import Exchange


@dataclass(slots=True)
class ModelCounters:
    """What ``/v1/stats`` reports per model."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Stats:
    """The counters per model, and the ``/v1/stats`` body.

    Args:
        catalog: The routing table the models and backends are read from.
        balancer: Each backend's load.
        started: ``time.time()`` when the gateway started (for ``uptime_s``).
    """

    def __init__(self, catalog: Catalog, balancer: Balancer, *, started: float) -> None:
        self.catalog = catalog
        self.balancer = balancer
        self.started = started
        self.counters: dict[str, ModelCounters] = {}

    def count(self, x: Exchange) -> None:
        """A relayed request ended (a sink recorder)."""
        counters = self.counters.get(x.model)
        if counters is None:
            counters = self.counters[x.model] = ModelCounters()
        counters.requests += 1
        counters.prompt_tokens += x.prompt_tokens
        counters.completion_tokens += x.completion_tokens

    def render(self, allowed: Mapping[str, Route] | None = None) -> dict[str, Any]:
        """The ``/v1/stats`` body.

        Args:
            allowed: What the caller's key may use (:meth:`~.catalog.Catalog.allowed_for`);
                ``None``: everything. A model allowed by namespace shows only the backends of
                those namespaces.
        """
        table = self.catalog.table
        models = []
        for name, entry in table.models.items():
            route = table.routes[name]
            own = route if allowed is None else allowed.get(name)
            if own is None:
                continue  # the caller's key may not use it: not even its name is told
            # The whole model (its not-ready backends too), or the backends of the namespaces
            # that allowed it.
            shown = entry.backends if own is route else own.backends
            models.append(self._model(entry, route, shown))
        return {
            "object": "stats",
            "uptime_s": round(time.time() - self.started, 1),
            "in_flight": sum(m["in_flight"] for m in models),
            "models": models,
        }

    def _model(self, entry: ModelEntry, route: Route, shown: tuple[Backend, ...]) -> dict[str, Any]:
        """One model's entry: its pools as the operator counts them, the ``shown`` backends
        (those the caller may see) and what the model served here.

        Args:
            entry: The model's merged entry.
            route: Its route for everyone: a backend is ready when the route has it.
            shown: The backends the caller may see.
        """
        counters = self.counters.get(entry.name, ModelCounters())
        backends = self._backends(route, shown)
        return {
            "id": entry.name,
            "aliases": list(entry.aliases),
            "source": entry.source,
            "ready": bool(route.backends),
            "pools": [
                {
                    "name": p.name,
                    "accelerator": p.accelerator,
                    "engine": p.engine,
                    "ready_replicas": p.ready_replicas,
                    "desired_replicas": p.desired_replicas,
                }
                for p in entry.pools
            ],
            "ready_replicas": sum(p.ready_replicas for p in entry.pools)
            if entry.pools
            else len(route.backends),
            "backends": backends,
            "in_flight": sum(b["in_flight"] for b in backends),
            "requests": counters.requests,
            "tokens": {
                "prompt": counters.prompt_tokens,
                "completion": counters.completion_tokens,
                "total": counters.prompt_tokens + counters.completion_tokens,
            },
        }

    def _backends(self, route: Route, shown: tuple[Backend, ...]) -> list[dict[str, Any]]:
        """The load of each shown backend, named ``<pool>/<index>`` in the order shown."""
        backends = []
        for i, backend in enumerate(shown):
            state = self.balancer.state(backend.url)
            backends.append(
                {
                    "backend": f"{backend.pool}/{i}",
                    "ready": backend in route.backends,
                    "in_flight": state.outstanding,
                    "ewma_latency_ms": round(state.ewma_s * 1000, 3),
                    "requests": state.requests,
                    "errors": state.errors,
                }
            )
        return backends
