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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.builder.build(), cls=JSONEncoder))


def _quantiles(metric: str, by: str, selector: str = "") -> list[tuple[str, str]]:
    """p50/p95/p99 of a histogram, summed ``by`` labels."""
    keep = f"le, {by}" if by else "le"
    legend = " ".join("{{" + label.strip() + "}}" for label in by.split(",") if label.strip())
    return [
        (
            (
                f"histogram_quantile({q}, sum by ({keep}) "
                f"(rate({m(metric, '_bucket')}{selector}[{RATE}])))"
            ),
            f"p{int(q * 100)} {legend}".strip(),
        )
        for q in _QUANTILES
    ]


def _rate(metric: str, by: str, selector: str = "") -> str:
    return f"sum by ({by}) (rate({m(metric)}{selector}[{RATE}]))"


def overview() -> dict[str, Any]:
    """Every model at once: is the platform serving, how fast, how full, how it scales."""
    b = _Board(
        "modelgrid-overview",
        "modelgrid / Overview",
        "Traffic, errors, latency, tokens, queues and replicas of every modelgrid model.",
    )
    for add_row in (_overview_traffic, _overview_latency, _overview_load, _overview_replicas):
        add_row(b)
    return b.to_dict()


def _overview_traffic(b: _Board) -> None:
    """Is the platform answering: requests, errors and refusals, by model and status."""
    routed = '{model!="-"}'
    errors = '{status=~"4..|5.."}'
    b.row("Traffic")
    b.panel(
        "timeseries",
        "Requests/s by model",
        "Requests answered by the gateway.",
        [(_rate("modelgrid_gateway_requests_total", "model", routed), "{{model}}")],
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
    b.panel(
        "timeseries",
        "Answers/s by status",
        "Gateway answers by HTTP status (499: the client went away).",
        [(_rate("modelgrid_gateway_requests_total", "status"), "{{status}}")],
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "Refused before a backend, by reason",
        "Requests the gateway refused itself (unknown model, bad JSON, key, limits).",
        [(_rate("modelgrid_gateway_rejected_total", "reason"), "{{reason}}")],
        unit="reqps",
    )


def _overview_latency(b: _Board) -> None:
    """How fast: time to first token, end-to-end and between tokens, and what the gateway adds."""
    b.row("Latency")
    b.panel(
        "timeseries",
        "Time to first token (gateway)",
        "From the request reaching the gateway to the first streamed chunk.",
        _quantiles("modelgrid_gateway_time_to_first_token_seconds", ""),
        unit="s",
    )
    b.panel(
        "timeseries",
        "End-to-end latency (gateway)",
        "From the request reaching the gateway to its last byte.",
        _quantiles("modelgrid_gateway_request_duration_seconds", ""),
        unit="s",
    )
    b.panel(
        "timeseries",
        "Inter-token latency (replicas)",
        "Time between two streamed chunks, measured by the replicas.",
        _quantiles("modelgrid_replica_inter_token_latency_seconds", ""),
        unit="s",
    )
    b.panel(
        "timeseries",
        "Gateway overhead on time to first token (p50)",
        "The same requests timed at the gateway and at their replica; the gap is the gateway.",
        [
            (
                (
                    f"histogram_quantile(0.5, sum by (le) (rate("
                    f"{m('modelgrid_gateway_time_to_first_token_seconds', '_bucket')}[{RATE}])))"
                ),
                "gateway",
            ),
            (
                (
                    f"histogram_quantile(0.5, sum by (le) (rate("
                    f"{m('modelgrid_replica_time_to_first_token_seconds', '_bucket')}[{RATE}])))"
                ),
                "replica",
            ),
        ],
        unit="s",
    )


def _overview_load(b: _Board) -> None:
    """How full: tokens per second, requests running and queued, KV cache, in flight."""
    b.row("Tokens and load")
    b.panel(
        "timeseries",
        "Tokens/s by model",
        "Prompt and generated tokens of the answers the gateway relayed.",
        [
            (_rate("modelgrid_gateway_prompt_tokens_total", "model"), "prompt {{model}}"),
            (_rate("modelgrid_gateway_generation_tokens_total", "model"), "generated {{model}}"),
        ],
    )
    b.panel(
        "timeseries",
        "Running and queued requests by pool",
        "Replicas: running = producing tokens; queued = accepted, no token yet.",
        [
            (
                f"sum by (model, pool) ({m('modelgrid_replica_requests_running')})",
                "running {{model}}/{{pool}}",
            ),
            (
                f"sum by (model, pool) ({m('modelgrid_replica_requests_queued')})",
                "queued {{model}}/{{pool}}",
            ),
        ],
    )
    b.panel(
        "timeseries",
        "KV-cache use by pool",
        "Largest KV-cache use of a replica in the pool (engines that report it: vLLM).",
        [
            (
                f"max by (model, pool) ({m('modelgrid_replica_kv_cache_usage_ratio')})",
                "{{model}}/{{pool}}",
            )
        ],
        unit="percentunit",
    )
    b.panel(
        "timeseries",
        "In flight at the gateway by pool",
        "Requests the gateway is relaying now.",
        [
            (
                f"sum by (model, pool) ({m('modelgrid_gateway_requests_in_flight')})",
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
        [
            (
                f"sum by (model, pool, accelerator) ({m('modelgrid_operator_replicas_ready')})",
                "ready {{model}}/{{pool}} ({{accelerator}})",
            ),
            (
                f"sum by (model, pool, accelerator) ({m('modelgrid_operator_replicas_desired')})",
                "desired {{model}}/{{pool}} ({{accelerator}})",
            ),
        ],
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
                (
                    f"max by (model, phase) ({m('modelgrid_operator_time_to_ready_seconds')}"
                    '{phase!="total"})'
                ),
                "{{model}} {{phase}}",
            )
        ],
        unit="s",
    )
    b.panel(
        "timeseries",
        "Operator reconciles/s by result",
        "created/patched: a RayService or RayCluster was written; invalid, apply_failed, error: "
        "failures.",
        [(_rate("modelgrid_operator_reconciles_total", "result"), "{{result}}")],
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
    b.panel(
        "timeseries",
        "Operator reconcile duration",
        "Time one reconcile takes (reads, render, writes).",
        _quantiles("modelgrid_operator_reconcile_duration_seconds", ""),
        unit="s",
    )


def model_drilldown() -> dict[str, Any]:
    """One model (the ``model`` variable), split by pool."""
    b = _Board(
        "modelgrid-model",
        "modelgrid / Model",
        "One modelgrid model: traffic, latency, tokens, load and replicas by pool.",
    )
    b.variable("model", "Model", "modelgrid_gateway_backends_ready")
    sel = '{model="$model"}'
    errors = '{model="$model", status=~"4..|5.."}'
    b.row("Traffic")
    b.panel(
        "timeseries",
        "Requests/s by pool and status",
        "Gateway answers for this model.",
        [(_rate("modelgrid_gateway_requests_total", "pool, status", sel), "{{pool}} {{status}}")],
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "Errors/s by route and status",
        "4xx and 5xx answers, at the gateway and at the replicas.",
        [
            (
                _rate("modelgrid_gateway_requests_total", "route, status", errors),
                "gateway {{route}} {{status}}",
            ),
            (
                _rate("modelgrid_replica_requests_total", "route, status", errors),
                "replica {{route}} {{status}}",
            ),
        ],
        unit="reqps",
    )
    b.row("Latency")
    b.panel(
        "timeseries",
        "Time to first token by pool (gateway)",
        "From the request reaching the gateway to the first streamed chunk.",
        _quantiles("modelgrid_gateway_time_to_first_token_seconds", "pool", sel),
        unit="s",
    )
    b.panel(
        "timeseries",
        "Time to first token by pool (replica)",
        "From the request reaching the replica to its first streamed chunk.",
        _quantiles("modelgrid_replica_time_to_first_token_seconds", "pool", sel),
        unit="s",
    )
    b.panel(
        "timeseries",
        "End-to-end latency by route",
        "From the request reaching the gateway to its last byte.",
        _quantiles("modelgrid_gateway_request_duration_seconds", "route", sel),
        unit="s",
    )
    b.panel(
        "timeseries",
        "Inter-token latency by pool",
        "Time between two streamed chunks, measured by the replicas.",
        _quantiles("modelgrid_replica_inter_token_latency_seconds", "pool", sel),
        unit="s",
    )
    b.row("Tokens and load")
    b.panel(
        "timeseries",
        "Tokens/s by pool",
        "Prompt and generated tokens counted by the replicas.",
        [
            (_rate("modelgrid_replica_prompt_tokens_total", "pool", sel), "prompt {{pool}}"),
            (_rate("modelgrid_replica_generation_tokens_total", "pool", sel), "generated {{pool}}"),
        ],
    )
    b.panel(
        "timeseries",
        "Running and queued by pool",
        "Running = producing tokens; queued = accepted, no token yet.",
        [
            (f"sum by (pool) ({m('modelgrid_replica_requests_running')}{sel})", "running {{pool}}"),
            (f"sum by (pool) ({m('modelgrid_replica_requests_queued')}{sel})", "queued {{pool}}"),
        ],
    )
    b.panel(
        "timeseries",
        "KV-cache use by pool",
        "Largest KV-cache use of a replica in the pool (engines that report it: vLLM).",
        [(f"max by (pool) ({m('modelgrid_replica_kv_cache_usage_ratio')}{sel})", "{{pool}}")],
        unit="percentunit",
    )
    b.panel(
        "timeseries",
        "Engine preemptions/s by pool",
        "Requests the engine preempted for lack of KV cache (engines that report it: vLLM).",
        [(_rate("modelgrid_replica_preemptions_total", "pool", sel), "{{pool}}")],
    )
    b.row("Replicas and cold start")
    b.panel(
        "timeseries",
        "Replicas by pool",
        "Ready and wanted worker pods per pool (accelerator in brackets).",
        [
            (
                f"sum by (pool, accelerator) ({m('modelgrid_operator_replicas_ready')}{sel})",
                "ready {{pool}} ({{accelerator}})",
            ),
            (
                f"sum by (pool, accelerator) ({m('modelgrid_operator_replicas_desired')}{sel})",
                "desired {{pool}} ({{accelerator}})",
            ),
        ],
    )
    b.panel(
        "bargauge",
        "Time to ready by phase",
        "Seconds in each phase before the first Ready, and the total.",
        [(f"max by (phase) ({m('modelgrid_operator_time_to_ready_seconds')}{sel})", "{{phase}}")],
        unit="s",
        width=6,
    )
    b.panel(
        "stat",
        "Phase",
        "The phase the model is in now.",
        [(f"max by (phase) ({m('modelgrid_operator_models')}{sel}) > 0", "{{phase}}")],
        width=6,
    )
    b.panel(
        "timeseries",
        "Reconciles/s by result",
        "What the operator did with this model.",
        [(_rate("modelgrid_operator_reconciles_total", "result", sel), "{{result}}")],
        unit="ops",
    )
    return b.to_dict()


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
