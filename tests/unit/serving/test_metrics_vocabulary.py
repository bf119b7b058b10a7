"""The one metric vocabulary: naming rules, the shared request families, each exporter builds
exactly its declared families, the replica's request tracking, engine stats mapped to our names,
and docs/metrics.md matching the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from modelgrid_operator.metrics import OperatorMetrics
from modelgrid_serving.gateway.metrics import GatewayMetrics
from modelgrid_serving.metrics import (
    FAMILIES,
    GATEWAY,
    OPERATOR,
    REPLICA,
    VLLM_STATS,
    EngineMetric,
    Family,
    Metrics,
    markdown_table,
)
from prometheus_client import CollectorRegistry, Counter, Gauge

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
NAME = re.compile(r"^modelgrid_(gateway|replica|operator)_[a-z][a-z0-9_]*[a-z]$")


def test_metric_names_follow_prometheus_conventions() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    for family in FAMILIES:
        assert NAME.match(family.name), family.name
        assert family.help.endswith(".") and family.help[0].isupper(), family.name
        assert family.name.startswith(f"modelgrid_{family.component}_")
        if family.kind == "histogram":
            assert family.name.endswith("_seconds"), family.name
            assert list(family.buckets or ()) == sorted(set(family.buckets or ())), family.name
        if family.kind == "gauge":
            assert not family.name.endswith("_total"), family.name
        assert "le" not in family.labels and "quantile" not in family.labels


def test_metric_request_families_are_one_declaration_for_gateway_and_replica() -> None:
    gateway = {f.stem: f for f in GATEWAY}
    replica = {f.stem: f for f in REPLICA}
    shared = set(gateway) & set(replica)
    assert shared == {
        "requests_total",
        "request_duration_seconds",
        "time_to_first_token_seconds",
        "prompt_tokens_total",
        "generation_tokens_total",
    }
    for stem in shared:
        g, r = gateway[stem], replica[stem]
        assert (g.kind, g.labels, g.buckets) == (r.kind, r.labels, r.buckets), stem
        assert g.help.replace("at the gateway", "X") == r.help.replace("at the replica", "X")


def test_metric_model_label_is_everywhere_a_model_is_meant() -> None:
    for family in FAMILIES:
        if family.stem not in {
            "rejected_total",
            "rate_limited_total",
            "reconcile_duration_seconds",
            "leader",
        }:
            assert "model" in family.labels, family.name


def _exported(registry: CollectorRegistry) -> dict[str, tuple[str, str]]:
    """Families a registry exports (even without samples): name -> (type, help)."""
    out = {}
    for metric in registry.collect():
        name = metric.name + ("_total" if metric.type == "counter" else "")
        out[name] = (metric.type, metric.documentation)
    return out


def _declared(families: tuple[Family, ...]) -> dict[str, tuple[str, str]]:
    return {f.name: (f.kind, f.help) for f in families}


def test_metric_each_exporter_builds_exactly_its_declared_families() -> None:
    engine = CollectorRegistry()  # the engine's families, as vLLM registers them
    labels = ["model_name", "engine"]
    Gauge("vllm:kv_cache_usage_perc", "x", labels, registry=engine).labels("m", "0").set(0.5)
    Counter("vllm:num_preemptions", "x", labels, registry=engine).labels("m", "0")
    with_engine = Metrics(pool="p")
    with_engine.registry.register(_engine_stats(engine))
    assert _exported(GatewayMetrics().registry) == _declared(GATEWAY)
    assert _exported(OperatorMetrics().registry) == _declared(OPERATOR)
    assert _exported(with_engine.registry) == _declared(REPLICA)


def _engine_stats(source: CollectorRegistry):
    from modelgrid_serving.metrics import EngineStats

    return EngineStats(VLLM_STATS, model="m", pool="p", source=source)


def test_metric_engine_stats_are_mapped_to_our_names_and_labels() -> None:
    engine = CollectorRegistry()
    kv = Gauge("vllm:kv_cache_usage_perc", "x", ["model_name", "engine"], registry=engine)
    kv.labels("m", "0").set(0.25)
    kv.labels("m", "1").set(0.75)
    preempted = Counter("vllm:num_preemptions", "x", ["model_name", "engine"], registry=engine)
    preempted.labels("m", "0").inc(2)
    preempted.labels("m", "1").inc(3)
    Gauge("vllm:num_requests_waiting", "x", registry=engine).set(7)  # not mapped
    metrics = Metrics(pool="gpu")
    metrics.registry.register(_engine_stats(engine))
    labels = {"model": "m", "pool": "p"}
    registry = metrics.registry
    assert registry.get_sample_value("modelgrid_replica_kv_cache_usage_ratio", labels) == 0.5
    assert registry.get_sample_value("modelgrid_replica_preemptions_total", labels) == 5
    text = metrics.render().decode()
    assert "vllm:" not in text and "waiting" not in text


def test_metric_engine_stats_absent_until_the_engine_reports() -> None:
    metrics = Metrics(pool="p")
    metrics.registry.register(
        _engine_stats(CollectorRegistry())  # an engine that registered nothing (MLX)
    )
    assert "kv_cache" not in metrics.render().decode()


def test_metric_engine_mapping_targets_replica_families() -> None:
    stems = {f.stem for f in REPLICA}
    for mapping in VLLM_STATS:
        assert isinstance(mapping, EngineMetric) and mapping.stem in stems
        assert mapping.source.startswith("vllm:")


def test_metric_tracker_moves_a_request_from_queued_to_running_to_done() -> None:
    metrics = Metrics(pool="local")
    value = metrics.registry.get_sample_value
    one = {"model": "tiny", "pool": "local"}
    tracker = metrics.track("tiny", "chat")
    assert value("modelgrid_replica_requests_queued", one) == 1
    tracker.token()
    assert value("modelgrid_replica_requests_queued", one) == 0
    assert value("modelgrid_replica_requests_running", one) == 1
    assert value("modelgrid_replica_time_to_first_token_seconds_count", one) == 1
    tracker.token()
    tracker.token()
    assert value("modelgrid_replica_inter_token_latency_seconds_count", one) == 2
    tracker.usage(5, 3)
    tracker.done(200)
    tracker.done(500)  # idempotent
    assert value("modelgrid_replica_requests_running", one) == 0
    assert value("modelgrid_replica_prompt_tokens_total", one) == 5
    assert value("modelgrid_replica_generation_tokens_total", one) == 3
    done = {**one, "route": "chat", "status": "200"}
    assert value("modelgrid_replica_requests_total", done) == 1
    assert value("modelgrid_replica_requests_total", {**done, "status": "500"}) is None
    assert value("modelgrid_replica_request_duration_seconds_count", {**one, "route": "chat"}) == 1


def test_metric_tracker_of_a_request_that_failed_before_a_token() -> None:
    metrics = Metrics(pool="local")
    metrics.track("tiny", "completions").done(400)
    value = metrics.registry.get_sample_value
    one = {"model": "tiny", "pool": "local"}
    assert value("modelgrid_replica_requests_queued", one) == 0
    assert value("modelgrid_replica_requests_running", one) == 0
    status = {**one, "route": "completions", "status": "400"}
    assert value("modelgrid_replica_requests_total", status) == 1


def test_metric_docs_table_matches_the_code() -> None:
    text = DOC.read_text()
    start = text.index("<!-- generated from modelgrid_serving.metrics.FAMILIES")
    start = text.index("\n", start) + 1
    end = text.index("<!-- end of generated table -->")
    assert text[start:end] == markdown_table(), (
        "docs/metrics.md is stale; replace its table with:\n" + markdown_table()
    )
