"""modelgrid's Grafana dashboards, built in code with grafana-foundation-sdk (typed builders).

Two dashboards over the one metric vocabulary (:mod:`modelgrid_serving.metrics`), for vLLM and
MLX replicas, the gateway and the operator together:

- **Overview**: traffic, errors, latency percentiles, tokens/s, queue, KV cache, replicas by
  pool and accelerator, cold starts, the operator's reconciles.
- **Model**: the same for one model (the ``model`` variable), split by pool.

grafana-foundation-sdk is a development dependency (the ``dev`` extra): only generating the
JSON needs it. ``python tools/dashboards.py DIR`` (``make dashboards``) writes them as JSON into the
chart's ``dashboards/`` folder, which ships them as ConfigMaps for the Grafana sidecar; a unit
test fails when the files there are stale. Queries name metrics through :func:`m`, which refuses a
name the vocabulary does not declare, so a typo fails at build time; a real Prometheus test
(tests/integration/observability) evaluates every query against what the code exports.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort
from modelgrid_serving.metrics import FAMILIES

DATASOURCE_VAR = "datasource"
RATE = "$__rate_interval"
"""Grafana's rate window: at least four scrape intervals."""
_QUANTILES = (0.5, 0.95, 0.99)
_NAMES = {f.name for f in FAMILIES}
_PANELS: dict[str, Any] = {"timeseries": timeseries, "bargauge": bargauge, "stat": stat}


def m(name: str, suffix: str = "") -> str:
    """A metric of the vocabulary by its exported name, plus a sample suffix (``_bucket``)."""
    if name not in _NAMES:
        raise KeyError(f"{name} is not a modelgrid metric (modelgrid_serving.metrics)")
    return name + suffix


class _Board:
    """A dashboard under construction: numbers panels (ids unique per dashboard) as they come."""

    def __init__(self, uid: str, title: str, description: str) -> None:
        self.ds = DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VAR + "}")
        self.next_id = 1
        self.builder = (
            dashboard.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["modelgrid"])
            .editable()
            .time("now-1h", "now")
            .refresh("30s")
            .timezone("browser")
            .with_variable(
                dashboard.DatasourceVariable(DATASOURCE_VAR).label("Data source").type("prometheus")
            )
        )

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def variable(self, name: str, label: str, metric: str) -> None:
        """A single-value variable listing the ``name`` label values of ``metric``."""
        query = f"label_values({m(metric)}, {name})"
        self.builder = self.builder.with_variable(
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(self.ds)
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )

    def row(self, title: str) -> None:
        self.builder = self.builder.with_row(dashboard.Row(title).id(self._id()))

    def panel(
        self,
        kind: str,
        title: str,
        description: str,
        targets: Iterable[tuple[str, str]],
        *,
        unit: str = "short",
        width: int = 12,
        height: int = 8,
    ) -> None:
        """A panel of ``kind`` (timeseries, bargauge, stat) over ``(expr, legend)`` targets."""
        module = _PANELS[kind]
        panel = (
            module.Panel()
            .id(self._id())
            .title(title)
            .description(description)
            .datasource(self.ds)
            .unit(unit)
            .span(width)
            .height(height)
        )
        for index, (expr, legend) in enumerate(targets):
            panel = panel.with_target(
                prometheus.Dataquery()
                .ref_id(chr(ord("A") + index))
                .expr(expr)
                .legend_format(legend)
            )
        self.builder = self.builder.with_panel(panel)

    def rate(
        self,
        title: str,
        description: str,
        metric: str,
        by: str,
        selector: str = "",
        *,
        unit: str = "short",
    ) -> None:
        """A timeseries of a counter's rate, one series per value of the ``by`` labels."""
        targets = [(_rate(metric, by, selector), _legend(by, " "))]
        self.panel("timeseries", title, description, targets, unit=unit)

    def latency(self, title: str, histogram: _Latency, by: str = "", selector: str = "") -> None:
        """A timeseries of a latency histogram's p50/p95/p99 in seconds, split ``by`` labels."""
        targets = _quantiles(histogram.metric, by, selector)
        self.panel("timeseries", title, histogram.description, targets, unit="s")

    def build(self, *rows: Callable[[_Board], None]) -> dict[str, Any]:
        """The dashboard as JSON data, once each of ``rows`` has added its row and panels."""
        for add_row in rows:
            add_row(self)
        return json.loads(json.dumps(self.builder.build(), cls=JSONEncoder))


def _at_both(query: Callable[[str], str], legend: str = "") -> list[tuple[str, str]]:
    """One target at the gateway and one at the replicas: ``query`` of the metrics' prefix
    (``modelgrid_gateway``, ``modelgrid_replica``), the legend led by where it was measured."""
    return [
        (query(f"modelgrid_{source}"), f"{source} {legend}".rstrip())
        for source in ("gateway", "replica")
    ]


def _legend(by: str, sep: str = "/") -> str:
    """Grafana's legend for series split ``by`` labels: ``{{model}}/{{pool}}``."""
    return sep.join("{{" + label.strip() + "}}" for label in by.split(",") if label.strip())


def _quantile(q: float, metric: str, by: str = "", selector: str = "") -> str:
    """The ``q`` quantile of a histogram, summed ``by`` labels."""
    keep = f"le, {by}" if by else "le"
    return (
        f"histogram_quantile({q}, sum by ({keep}) (rate({m(metric, '_bucket')}{selector}[{RATE}])))"
    )


def _quantiles(metric: str, by: str, selector: str = "") -> list[tuple[str, str]]:
    """p50/p95/p99 of a histogram, summed ``by`` labels."""
    return [
        (_quantile(q, metric, by, selector), f"p{int(q * 100)} {_legend(by, ' ')}".strip())
        for q in _QUANTILES
    ]


def _rate(metric: str, by: str, selector: str = "") -> str:
    return f"sum by ({by}) (rate({m(metric)}{selector}[{RATE}]))"


def _gauge(op: str, metric: str, by: str, selector: str = "") -> str:
    """A gauge aggregated ``by`` labels with ``op`` (sum, max)."""
    return f"{op} by ({by}) ({m(metric)}{selector})"


def _tokens(source: str, by: str, selector: str = "") -> list[tuple[str, str]]:
    """Prompt and generated tokens/s counted by ``source`` (gateway or replica)."""
    return [
        (_rate(f"modelgrid_{source}_{kind}_tokens_total", by, selector), f"{word} {_legend(by)}")
        for kind, word in (("prompt", "prompt"), ("generation", "generated"))
    ]


def _running_and_queued(by: str, selector: str = "") -> list[tuple[str, str]]:
    """The replicas' requests producing tokens and those accepted with no token yet."""
    return [
        (
            _gauge("sum", f"modelgrid_replica_requests_{state}", by, selector),
            f"{state} {_legend(by)}",
        )
        for state in ("running", "queued")
    ]


def _replicas(by: str, selector: str = "") -> list[tuple[str, str]]:
    """Ready against desired worker pods, split ``by`` labels and the accelerator."""
    return [
        (
            _gauge("sum", f"modelgrid_operator_replicas_{state}", f"{by}, accelerator", selector),
            f"{state} {_legend(by)} ({{{{accelerator}}}})",
        )
        for state in ("ready", "desired")
    ]


def _kv_cache(by: str, selector: str = "") -> list[tuple[str, str]]:
    """The largest KV-cache use of a replica (engines that report it)."""
    return [(_gauge("max", "modelgrid_replica_kv_cache_usage_ratio", by, selector), _legend(by))]


class _Latency(NamedTuple):
    """A latency histogram and what it measures: the description of every panel that charts it,
    on either dashboard."""

    metric: str
    description: str


_TTFT_GATEWAY = _Latency(
    "modelgrid_gateway_time_to_first_token_seconds",
    "From the request reaching the gateway to the first streamed chunk.",
)
_TTFT_REPLICA = _Latency(
    "modelgrid_replica_time_to_first_token_seconds",
    "From the request reaching the replica to its first streamed chunk.",
)
_END_TO_END = _Latency(
    "modelgrid_gateway_request_duration_seconds",
    "From the request reaching the gateway to its last byte.",
)
_INTER_TOKEN = _Latency(
    "modelgrid_replica_inter_token_latency_seconds",
    "Time between two streamed chunks, measured by the replicas.",
)
_RECONCILE = _Latency(
    "modelgrid_operator_reconcile_duration_seconds",
    "Time one reconcile takes (reads, render, writes).",
)
# The description both dashboards give their panels of the same measure.
_KV_CACHE = "Largest KV-cache use of a replica in the pool (engines that report it: vLLM)."


def overview() -> dict[str, Any]:
    """Every model at once: is the platform serving, how fast, how full, how it scales."""
    return _Board(
        "modelgrid-overview",
        "modelgrid / Overview",
        "Traffic, errors, latency, tokens, queues and replicas of every modelgrid model.",
    ).build(_overview_traffic, _overview_latency, _overview_load, _overview_replicas)


def _overview_traffic(b: _Board) -> None:
    """Is the platform answering: requests, errors and refusals, by model and status."""
    routed = '{model!="-"}'
    errors = '{status=~"4..|5.."}'
    b.row("Traffic")
    b.rate(
        "Requests/s by model",
        "Requests answered by the gateway.",
        "modelgrid_gateway_requests_total",
        "model",
        routed,
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "Error ratio by model",
        'Share of gateway answers with a 4xx or 5xx status (model "-": refused before a model '
        "was known).",
        [
            (
                (
                    f"{_rate('modelgrid_gateway_requests_total', 'model', errors)}"
                    f" / {_rate('modelgrid_gateway_requests_total', 'model')}"
                ),
                "{{model}}",
            )
        ],
        unit="percentunit",
    )
    b.rate(
        "Answers/s by status",
        "Gateway answers by HTTP status (499: the client went away).",
        "modelgrid_gateway_requests_total",
        "status",
        unit="reqps",
    )
    b.rate(
        "Refused before a backend, by reason",
        "Requests the gateway refused itself (unknown model, bad JSON, key, limits).",
        "modelgrid_gateway_rejected_total",
        "reason",
        unit="reqps",
    )


def _overview_latency(b: _Board) -> None:
    """How fast: time to first token, end-to-end and between tokens, and what the gateway adds."""
    b.row("Latency")
    b.latency("Time to first token (gateway)", _TTFT_GATEWAY)
    b.latency("End-to-end latency (gateway)", _END_TO_END)
    b.latency("Inter-token latency (replicas)", _INTER_TOKEN)
    b.panel(
        "timeseries",
        "Gateway overhead on time to first token (p50)",
        "The same requests timed at the gateway and at their replica; the gap is the gateway.",
        _at_both(lambda metrics: _quantile(0.5, f"{metrics}_time_to_first_token_seconds")),
        unit="s",
    )


def _overview_load(b: _Board) -> None:
    """How full: tokens per second, requests running and queued, KV cache, in flight."""
    b.row("Tokens and load")
    b.panel(
        "timeseries",
        "Tokens/s by model",
        "Prompt and generated tokens of the answers the gateway relayed.",
        _tokens("gateway", "model"),
    )
    b.panel(
        "timeseries",
        "Running and queued requests by pool",
        "Replicas: running = producing tokens; queued = accepted, no token yet.",
        _running_and_queued("model, pool"),
    )
    b.panel(
        "timeseries",
        "KV-cache use by pool",
        _KV_CACHE,
        _kv_cache("model, pool"),
        unit="percentunit",
    )
    b.panel(
        "timeseries",
        "In flight at the gateway by pool",
        "Requests the gateway is relaying now.",
        [
            (
                _gauge("sum", "modelgrid_gateway_requests_in_flight", "model, pool"),
                "{{model}}/{{pool}}",
            )
        ],
    )


def _overview_replicas(b: _Board) -> None:
    """How it scales: ready against desired replicas, phases, cold starts, the operator's work."""
    b.row("Replicas and cold starts")
    b.panel(
        "timeseries",
        "Ready replicas by pool and accelerator",
        "Worker pods ready to serve (solid) against those wanted, per pool.",
        _replicas("model, pool"),
    )
    b.panel(
        "stat",
        "Models by phase",
        "InferenceModels in each phase.",
        [(f"sum by (phase) ({m('modelgrid_operator_models')})", "{{phase}}")],
        width=6,
    )
    b.panel(
        "stat",
        "Backends ready at the gateway",
        "Backends the gateway routes to, over all models.",
        [(f"sum({m('modelgrid_gateway_backends_ready')})", "backends")],
        width=6,
    )
    b.panel(
        "bargauge",
        "Cold start: time to ready by phase",
        "Seconds each model spent pending, scheduling and loading before its first Ready.",
        [
            (
                _gauge(
                    "max",
                    "modelgrid_operator_time_to_ready_seconds",
                    "model, phase",
                    '{phase!="total"}',
                ),
                "{{model}} {{phase}}",
            )
        ],
        unit="s",
    )
    _operator_work(b)


def _operator_work(b: _Board) -> None:
    """What the operator does to get there: reconciles by result, errors by reason, duration.
    Panels of the replicas row: a model that does not scale shows why beside its replicas."""
    b.rate(
        "Operator reconciles/s by result",
        "created/patched: a RayService or RayCluster was written; invalid, apply_failed, error: "
        "failures.",
        "modelgrid_operator_reconciles_total",
        "result",
        unit="ops",
    )
    b.panel(
        "timeseries",
        "Operator reconcile errors by reason",
        "Failed reconciles in each rate window, by condition reason or exception type.",
        [
            (
                (
                    f"sum by (reason) "
                    f"(increase({m('modelgrid_operator_reconcile_errors_total')}[{RATE}]))"
                ),
                "{{reason}}",
            )
        ],
    )
    b.latency("Operator reconcile duration", _RECONCILE)
    b.panel(
        "stat",
        "Operators reconciling",
        "Operator pods that reconcile now: 1 (the leader-election Lease's holder); 0: no model "
        "is reconciled (no operator running, or none holds the Lease).",
        [(f"sum({m('modelgrid_operator_leader')})", "reconciling")],
    )


_SELECTED = '{model="$model"}'
"""The model dashboard's selector: the model its ``model`` variable names."""


def model_drilldown() -> dict[str, Any]:
    """One model (the ``model`` variable), split by pool."""
    b = _Board(
        "modelgrid-model",
        "modelgrid / Model",
        "One modelgrid model: traffic, latency, tokens, load and replicas by pool.",
    )
    b.variable("model", "Model", "modelgrid_gateway_backends_ready")
    return b.build(_model_traffic, _model_latency, _model_load, _model_replicas)


def _model_traffic(b: _Board) -> None:
    """The model's answers by pool and status, and its errors at the gateway and replicas."""
    errors = '{model="$model", status=~"4..|5.."}'
    b.row("Traffic")
    b.rate(
        "Requests/s by pool and status",
        "Gateway answers for this model.",
        "modelgrid_gateway_requests_total",
        "pool, status",
        _SELECTED,
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "Errors/s by route and status",
        "4xx and 5xx answers, at the gateway and at the replicas.",
        _at_both(
            lambda metrics: _rate(f"{metrics}_requests_total", "route, status", errors),
            "{{route}} {{status}}",
        ),
        unit="reqps",
    )


def _model_latency(b: _Board) -> None:
    """The model's time to first token at the gateway and the replicas, end to end, per token."""
    b.row("Latency")
    b.latency("Time to first token by pool (gateway)", _TTFT_GATEWAY, "pool", _SELECTED)
    b.latency("Time to first token by pool (replica)", _TTFT_REPLICA, "pool", _SELECTED)
    b.latency("End-to-end latency by route", _END_TO_END, "route", _SELECTED)
    b.latency("Inter-token latency by pool", _INTER_TOKEN, "pool", _SELECTED)


def _model_load(b: _Board) -> None:
    """The model's tokens, running and queued requests, KV cache and preemptions by pool."""
    b.row("Tokens and load")
    b.panel(
        "timeseries",
        "Tokens/s by pool",
        "Prompt and generated tokens counted by the replicas.",
        _tokens("replica", "pool", _SELECTED),
    )
    b.panel(
        "timeseries",
        "Running and queued by pool",
        "Running = producing tokens; queued = accepted, no token yet.",
        _running_and_queued("pool", _SELECTED),
    )
    b.panel(
        "timeseries",
        "KV-cache use by pool",
        _KV_CACHE,
        _kv_cache("pool", _SELECTED),
        unit="percentunit",
    )
    b.rate(
        "Engine preemptions/s by pool",
        "Requests the engine preempted for lack of KV cache (engines that report it: vLLM).",
        "modelgrid_replica_preemptions_total",
        "pool",
        _SELECTED,
    )


def _model_replicas(b: _Board) -> None:
    """The model's replicas by pool, its cold start, phase and reconciles."""
    b.row("Replicas and cold start")
    b.panel(
        "timeseries",
        "Replicas by pool",
        "Ready and wanted worker pods per pool (accelerator in brackets).",
        _replicas("pool", _SELECTED),
    )
    b.panel(
        "bargauge",
        "Time to ready by phase",
        "Seconds in each phase before the first Ready, and the total.",
        [
            (
                _gauge("max", "modelgrid_operator_time_to_ready_seconds", "phase", _SELECTED),
                "{{phase}}",
            )
        ],
        unit="s",
        width=6,
    )
    b.panel(
        "stat",
        "Phase",
        "The phase the model is in now.",
        [(_gauge("max", "modelgrid_operator_models", "phase", _SELECTED) + " > 0", "{{phase}}")],
        width=6,
    )
    b.rate(
        "Reconciles/s by result",
        "What the operator did with this model.",
        "modelgrid_operator_reconciles_total",
        "result",
        _SELECTED,
        unit="ops",
    )


DASHBOARDS = {"modelgrid-overview.json": overview, "modelgrid-model.json": model_drilldown}
"""File name -> builder."""


def render_dashboards() -> dict[str, str]:
    """Every dashboard as the JSON text written to the chart (stable: sorted keys)."""
    return {
        name: json.dumps(build(), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def write_dashboards(directory: Path) -> list[Path]:
    """Write every dashboard into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_dashboards().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tools/dashboards.py DIR (charts/modelgrid/dashboards)")
    for written in write_dashboards(Path(sys.argv[1])):
        print(written)
