"""modelgrid's one metric vocabulary, and the metrics of one replica.

Every family that the gateway, the Serve replicas (any engine) and the operator export is
declared once here (:data:`FAMILIES`): name, type, help, labels, buckets. The three exporters
build their registries from these declarations, the dashboards query these names, and
``docs/metrics.md`` is generated from them (a unit test fails when it differs).

Why ``modelgrid_gateway_*`` and ``modelgrid_replica_*`` rather than one name with a
``component`` label: a request through the gateway is measured twice, once at the gateway and
once at its replica. Under one name, ``sum(rate(modelgrid_requests_total[5m]))`` would count it
twice and a latency quantile would mix two different measurements; Prometheus' rule is that a
sum over every label of a family must mean something. So the quantities both measure share a
*stem* (``requests_total``, ``time_to_first_token_seconds``...) and one declaration (same help,
labels and buckets, see :func:`_request_families`), and the component is part of the name. The
gap between the two histograms of a stem is the gateway's overhead.

Replica measurements are taken where the replica answers HTTP, so they include our own overhead
and mean the same for every engine. "Queued" means accepted but no token yet (waiting in the
engine's scheduler or prefilling); "running" means producing tokens. What only the engine knows
(vLLM's KV-cache use, preemptions) is read from the engine's own metrics when scraped and
exported under our names (:class:`EngineStats`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120,
)  # fmt: skip
"""Seconds, for request duration and time to first token: 1 ms (a cached token on a GPU) to
two minutes (a long generation)."""
ITL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
"""Seconds between two streamed chunks."""
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

Kind = Literal["counter", "gauge", "histogram"]
Component = Literal["gateway", "replica", "operator"]


@dataclass(frozen=True)
class Family:
    """One metric family as exported: the single place its name, help and labels are written."""

    component: Component
    stem: str
    """The name after ``modelgrid_<component>_``, as exported: counters end in ``_total``."""
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    """Histograms only: the family is a histogram exactly when it has buckets."""

    @property
    def kind(self) -> Kind:
        """Counter (``*_total``), histogram (has buckets) or gauge, as the name says."""
        if self.stem.endswith("_total"):
            return "counter"
        return "histogram" if self.buckets else "gauge"

    @property
    def name(self) -> str:
        """The exported name (counters with their ``_total``)."""
        return f"modelgrid_{self.component}_{self.stem}"

    def create(self, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
        """The prometheus_client object of this family, registered in ``registry``."""
        if self.kind == "counter":
            return Counter(
                self.name.removesuffix("_total"), self.help, self.labels, registry=registry
            )
        if self.kind == "gauge":
            return Gauge(self.name, self.help, self.labels, registry=registry)
        return Histogram(self.name, self.help, self.labels, buckets=self.buckets, registry=registry)


def _request_families(component: Component, where: str) -> tuple[Family, ...]:
    """What both the gateway and the replicas measure of every request: one declaration."""
    return (
        Family(
            component,
            "requests_total",
            f"Requests answered {where}, by model, pool, route (chat, completions, embeddings) "
            "and HTTP status.",
            ("model", "pool", "route", "status"),
        ),
        Family(
            component,
            "request_duration_seconds",
            f"End-to-end latency {where}: from the request to its last byte.",
            ("model", "pool", "route"),
            LATENCY_BUCKETS,
        ),
        Family(
            component,
            "time_to_first_token_seconds",
            f"Time to first token {where}: from the request to the first streamed chunk.",
            ("model", "pool"),
            LATENCY_BUCKETS,
        ),
        Family(
            component,
            "prompt_tokens_total",
            f"Prompt tokens of the requests answered {where} (the engine's usage report; the "
            "gateway estimates when a backend reports none).",
            ("model", "pool"),
        ),
        Family(
            component,
            "generation_tokens_total",
            f"Generated tokens of the requests answered {where} (the engine's usage report; the "
            "gateway estimates when a backend reports none).",
            ("model", "pool"),
        ),
    )


GATEWAY = (
    *_request_families("gateway", "at the gateway"),
    Family(
        "gateway",
        "requests_in_flight",
        "Requests being relayed to a backend now.",
        ("model", "pool"),
    ),
    Family(
        "gateway",
        "upstream_errors_total",
        "Backend failures: connect (retried on another backend), unavailable (answered 503 "
        "before any byte; retried on another backend), stream (broken mid-response), timeout.",
        ("model", "pool", "kind"),
    ),
    Family(
        "gateway",
        "rejected_total",
        "Requests refused before any backend; reason is the OpenAI error code.",
        ("reason",),
    ),
    Family(
        "gateway",
        "rate_limited_total",
        "Requests refused with 429, by key name (never the key) and limit (requests, tokens).",
        ("key", "limit"),
    ),
    Family(
        "gateway",
        "backends_ready",
        "Backends of a model that the gateway routes to now.",
        ("model",),
    ),
)

REPLICA = (
    *_request_families("replica", "at the replica"),
    Family(
        "replica",
        "inter_token_latency_seconds",
        "Time between two streamed chunks of one response.",
        ("model", "pool"),
        ITL_BUCKETS,
    ),
    Family(
        "replica",
        "requests_running",
        "Requests producing tokens now.",
        ("model", "pool"),
    ),
    Family(
        "replica",
        "requests_queued",
        "Requests accepted that have no token yet (scheduler queue or prefill).",
        ("model", "pool"),
    ),
    Family(
        "replica",
        "kv_cache_usage_ratio",
        "Share of the engine's KV cache in use, 0 to 1 (engines that report it: vLLM).",
        ("model", "pool"),
    ),
    Family(
        "replica",
        "preemptions_total",
        "Requests the engine preempted for lack of KV cache (engines that report it: vLLM).",
        ("model", "pool"),
    ),
)

OPERATOR = (
    Family(
        "operator",
        "reconciles_total",
        "Reconciles of an InferenceModel by result: created (a pool's RayService), patched (a "
        "RayService or RayCluster was written or deleted), unchanged, invalid (bad spec), "
        "apply_failed, error (an exception; retried).",
        ("namespace", "model", "result"),
    ),
    Family(
        "operator",
        "reconcile_errors_total",
        "Reconciles that failed, by reason: a condition reason (InvalidSpec, KubeRayMissing, "
        "ApplyFailed) or the exception's type.",
        ("namespace", "model", "reason"),
    ),
    Family(
        "operator",
        "reconcile_duration_seconds",
        "Time one reconcile took (reads, render, writes).",
        (),
        RECONCILE_BUCKETS,
    ),
    Family(
        "operator",
        "models",
        "InferenceModels by phase: 1 for the phase a model is in, 0 for the others.",
        ("namespace", "model", "phase"),
    ),
    Family(
        "operator",
        "replicas_ready",
        "Ready replicas (worker pods) per pool.",
        ("namespace", "model", "pool", "accelerator", "engine"),
    ),
    Family(
        "operator",
        "replicas_desired",
        "Wanted replicas (worker pods) per pool.",
        ("namespace", "model", "pool", "accelerator", "engine"),
    ),
    Family(
        "operator",
        "leader",
        "Whether this operator process reconciles: 1 while it holds the leader-election Lease "
        "(or runs without leader election), 0 while it waits to take over. Summed over the "
        "operator's pods: 1; 0 means no model is reconciled.",
        (),
    ),
    Family(
        "operator",
        "time_to_ready_seconds",
        "The model's cold start: seconds in each phase (pending, scheduling, loading) until its "
        "first Ready, and their total.",
        ("namespace", "model", "phase"),
    ),
)

FAMILIES: tuple[Family, ...] = (*GATEWAY, *REPLICA, *OPERATOR)
"""Every family modelgrid exports."""


class MetricFamilies:
    """The metric families of one process (a replica, the gateway, the operator), in a registry
    of their own.

    Each family is an attribute named by its stem (``self.requests_total``): the vocabulary
    above is the one place a family is named, and what code calls it is what Prometheus shows
    after ``modelgrid_<component>_``.

    Args:
        families: The process's families, from the vocabulary.
    """

    def __init__(self, families: Iterable[Family]) -> None:
        self.registry = CollectorRegistry()
        for family in families:
            setattr(self, family.stem, family.create(self.registry))

    if TYPE_CHECKING:

        def __getattr__(self, stem: str) -> Any:
            """The families ``__init__`` sets, as type checkers see them."""

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


def markdown_table(families: Iterable[Family] = FAMILIES) -> str:
    """The docs table of ``families``: name, type, labels, meaning."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for f in families:
        labels = ", ".join(f"`{label}`" for label in f.labels) or "-"
        rows.append(f"| `{f.name}` | {f.kind} | {labels} | {f.help} |")
    return "\n".join(rows) + "\n"


# ---- the replica's metrics --------------------------------------------------------------------

_REPLICA = {f.stem: f for f in REPLICA}


@dataclass(frozen=True)
class EngineMetric:
    """How one engine-native metric maps onto one of ours."""

    source: str
    """The engine's sample name, e.g. ``vllm:kv_cache_usage_perc``."""
    stem: str
    """The replica family it becomes (``kv_cache_usage_ratio``)."""


VLLM_STATS = (
    EngineMetric("vllm:kv_cache_usage_perc", "kv_cache_usage_ratio"),
    EngineMetric("vllm:num_preemptions_total", "preemptions_total"),
)
"""vLLM's own families (registered in the replica process' default registry by vLLM's
Prometheus stat logger) and the modelgrid names they are exported under. vLLM's
``kv_cache_usage_perc`` is a fraction from 0 to 1 despite its name."""
_ENGINE_STEMS = frozenset(m.stem for m in VLLM_STATS)
"""Replica families that only engine stats fill (:class:`EngineStats`)."""


class EngineStats(Collector):
    """Exports engine-native numbers under modelgrid names, read at scrape time (nothing on the
    request path). Several engine cores of one replica are summed (preemptions) or averaged
    (KV-cache use)."""

    def __init__(
        self,
        mapping: Iterable[EngineMetric],
        *,
        model: str,
        pool: str,
        source: CollectorRegistry = REGISTRY,
    ) -> None:
        self._mapping = tuple(mapping)
        self._labels = [model, pool]
        self._source = source.restricted_registry(
            [m.source for m in self._mapping]
            + [m.source.removesuffix("_total") for m in self._mapping]
        )

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        values: dict[str, list[float]] = {}
        for family in self._source.collect():
            for sample in family.samples:
                values.setdefault(sample.name, []).append(sample.value)
        for m in self._mapping:
            found = values.get(m.source)
            if not found:
                continue  # the engine does not report it (yet)
            ours = _REPLICA[m.stem]
            if ours.kind == "counter":
                counter = CounterMetricFamily(
                    ours.name.removesuffix("_total"), ours.help, labels=ours.labels
                )
                counter.add_metric(self._labels, sum(found))
                yield counter
            else:
                gauge = GaugeMetricFamily(ours.name, ours.help, labels=ours.labels)
                gauge.add_metric(self._labels, sum(found) / len(found))
                yield gauge

    def describe(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        return []  # no describe-time collection: the engine may not have started yet


class Metrics(MetricFamilies):
    """The metric families of one replica (the ``REPLICA`` vocabulary, less what only engine
    stats fill).

    Args:
        pool: The pool this replica belongs to (the ``pool`` label of every sample); "-" when
            unknown.
    """

    def __init__(self, pool: str = "-") -> None:
        super().__init__(f for f in REPLICA if f.stem not in _ENGINE_STEMS)
        self.pool = pool
        self._children: dict[str, _ModelChildren] = {}

    def watch_engine(self, mapping: Iterable[EngineMetric], *, model: str) -> None:
        """Also export the engine's own numbers named in ``mapping`` (read at each scrape)."""
        self.registry.register(EngineStats(mapping, model=model, pool=self.pool))

    def track(self, model: str, route: str) -> RequestTracker:
        """Start tracking one request."""
        children = self._children.get(model)
        if children is None:
            children = self._children[model] = _ModelChildren(self, model)
        return RequestTracker(self, children, model, route)


class _ModelChildren:
    """The labelled children of one model, looked up once (not on every token)."""

    __slots__ = ("generation", "itl", "prompt", "queued", "running", "ttft")

    def __init__(self, m: Metrics, model: str) -> None:
        self.queued = m.requests_queued.labels(model, m.pool)
        self.running = m.requests_running.labels(model, m.pool)
        self.ttft = m.time_to_first_token_seconds.labels(model, m.pool)
        self.itl = m.inter_token_latency_seconds.labels(model, m.pool)
        self.prompt = m.prompt_tokens_total.labels(model, m.pool)
        self.generation = m.generation_tokens_total.labels(model, m.pool)


class RequestTracker:
    """Follows one request from arrival to its last byte; moves it from queued to running."""

    __slots__ = ("_c", "_last", "_m", "_model", "_route", "_start", "_state")

    def __init__(self, metrics: Metrics, children: _ModelChildren, model: str, route: str) -> None:
        self._m, self._c, self._model, self._route = metrics, children, model, route
        self._start = self._last = time.perf_counter()
        self._state = "queued"
        children.queued.inc()

    def token(self) -> None:
        """A chunk with tokens went out."""
        now = time.perf_counter()
        if self._state == "queued":
            self._c.queued.dec()
            self._c.running.inc()
            self._c.ttft.observe(now - self._start)
            self._state = "running"
        else:
            self._c.itl.observe(now - self._last)
        self._last = now

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Token counts the engine reported."""
        self._c.prompt.inc(prompt_tokens)
        self._c.generation.inc(completion_tokens)

    def done(self, status: int) -> None:
        """The request ended (any way). Idempotent."""
        if self._state == "done":
            return
        gauge = self._c.queued if self._state == "queued" else self._c.running
        gauge.dec()
        self._state = "done"
        m = self._m
        m.requests_total.labels(self._model, m.pool, self._route, str(status)).inc()
        m.request_duration_seconds.labels(self._model, m.pool, self._route).observe(
            time.perf_counter() - self._start
        )
