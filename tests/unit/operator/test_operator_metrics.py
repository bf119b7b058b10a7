"""The operator's metrics: what a reconcile and the status it wrote become, forgetting a deleted
model, and the ``--metrics-port`` flag."""

from __future__ import annotations

from typing import Any

import pytest
from modelgrid_cli.main import build_parser
from modelgrid_operator.metrics import OperatorMetrics, model_label

pytestmark = pytest.mark.unit

BODY = {"metadata": {"name": "llama", "namespace": "team-a"}, "spec": {"servedModelName": "l3"}}


def _status(phase: str = "Ready", **extra: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        "conditions": [
            {"type": "SpecValid", "status": "True", "reason": "Valid"},
            {"type": "RayServiceApplied", "status": "True", "reason": "Applied"},
        ],
        "pools": [
            {
                "name": "gpu",
                "accelerator": "nvidia",
                "engine": "vllm",
                "readyReplicas": 2,
                "desiredReplicas": 3,
            },
        ],
        "timeToReady": {"pending": 1.5, "scheduling": 20.0, "loading": 40.0, "total": 61.5},
        **extra,
    }


def _value(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_operator_metrics_model_label_is_the_served_name() -> None:
    assert model_label(BODY) == ("team-a", "l3")
    assert model_label({"metadata": {"name": "plain"}}) == ("default", "plain")


def test_operator_metrics_reconcile_records_result_phase_replicas_and_time_to_ready() -> None:
    m = OperatorMetrics()
    m.reconciled(BODY, action="created", status=_status("Loading"), seconds=0.01)
    m.reconciled(BODY, action="", status=_status(), seconds=0.02)
    ns = {"namespace": "team-a", "model": "l3"}
    assert _value(m, "modelgrid_operator_reconciles_total", **ns, result="created") == 1
    assert _value(m, "modelgrid_operator_reconciles_total", **ns, result="unchanged") == 1
    assert _value(m, "modelgrid_operator_reconcile_duration_seconds_count") == 2
    assert _value(m, "modelgrid_operator_models", **ns, phase="Ready") == 1
    assert _value(m, "modelgrid_operator_models", **ns, phase="Loading") == 0
    pool = {**ns, "pool": "gpu", "accelerator": "nvidia", "engine": "vllm"}
    assert _value(m, "modelgrid_operator_replicas_ready", **pool) == 2
    assert _value(m, "modelgrid_operator_replicas_desired", **pool) == 3
    assert _value(m, "modelgrid_operator_time_to_ready_seconds", **ns, phase="scheduling") == 20
    assert _value(m, "modelgrid_operator_time_to_ready_seconds", **ns, phase="total") == 61.5
    assert (
        m.registry.get_sample_value(
            "modelgrid_operator_reconcile_errors_total", {**ns, "reason": "InvalidSpec"}
        )
        is None
    )


def test_operator_metrics_time_to_ready_total_waits_for_ready() -> None:
    m = OperatorMetrics()
    status = _status(
        "Scheduling", timeToReady={"pending": 2.0, "scheduling": 0.0, "loading": 0.0, "total": None}
    )
    m.reconciled(BODY, action="", status=status, seconds=0.0)
    ns = {"namespace": "team-a", "model": "l3"}
    assert _value(m, "modelgrid_operator_time_to_ready_seconds", **ns, phase="pending") == 2
    assert _value(m, "modelgrid_operator_time_to_ready_seconds", **ns, phase="total") is None


@pytest.mark.parametrize(
    ("condition", "reason", "result"),
    [
        ("SpecValid", "InvalidSpec", "invalid"),
        ("RayServiceApplied", "KubeRayMissing", "apply_failed"),
        ("RayServiceApplied", "ApplyFailed", "apply_failed"),
    ],
)
def test_operator_metrics_failed_reconciles_count_as_errors(condition, reason, result) -> None:
    m = OperatorMetrics()
    status = _status("Pending" if result == "apply_failed" else "Failed")
    for c in status["conditions"]:
        if c["type"] == condition:
            c.update(status="False", reason=reason)
    m.reconciled(BODY, action="", status=status, seconds=0.0)
    ns = {"namespace": "team-a", "model": "l3"}
    assert _value(m, "modelgrid_operator_reconciles_total", **ns, result=result) == 1
    assert _value(m, "modelgrid_operator_reconcile_errors_total", **ns, reason=reason) == 1


def test_operator_metrics_exception_counts_by_type() -> None:
    m = OperatorMetrics()
    m.failed(BODY, TimeoutError("api server"), seconds=0.5)
    ns = {"namespace": "team-a", "model": "l3"}
    assert _value(m, "modelgrid_operator_reconciles_total", **ns, result="error") == 1
    assert _value(m, "modelgrid_operator_reconcile_errors_total", **ns, reason="TimeoutError") == 1


def test_operator_metrics_pools_that_go_and_deleted_models_leave_no_gauges() -> None:
    m = OperatorMetrics()
    m.reconciled(BODY, action="", status=_status(), seconds=0.0)
    renamed = _status()
    renamed["pools"][0]["name"] = "gpu2"
    m.reconciled(BODY, action="patched", status=renamed, seconds=0.0)
    text = m.render().decode()
    assert 'pool="gpu"' not in text and 'pool="gpu2"' in text
    m.forget(BODY)
    m.forget(BODY)  # twice is fine
    text = m.render().decode()
    for gauge in ("models", "replicas_ready", "replicas_desired", "time_to_ready_seconds"):
        assert f"modelgrid_operator_{gauge}{{" not in text, gauge
    assert "modelgrid_operator_reconciles_total{" in text  # counters stay


def test_operator_metrics_port_flag() -> None:
    parser = build_parser()
    assert parser.parse_args(["operator"]).metrics_port == 8081
    assert parser.parse_args(["operator", "--metrics-port", "0"]).metrics_port == 0


def test_operator_metrics_unchanged_status_keeps_the_last_one_written() -> None:
    m = OperatorMetrics()
    m.reconciled(BODY, action="created", status=_status(), seconds=0.0)
    stale = {**BODY, "status": {}}  # a body from an older event: no status yet
    m.reconciled(stale, action="", status=None, seconds=0.0)
    pool = {
        "namespace": "team-a",
        "model": "l3",
        "pool": "gpu",
        "accelerator": "nvidia",
        "engine": "vllm",
    }
    assert _value(m, "modelgrid_operator_replicas_ready", **pool) == 2
    ns = {"namespace": "team-a", "model": "l3"}
    assert _value(m, "modelgrid_operator_reconciles_total", **ns, result="unchanged") == 1


def test_operator_metrics_after_a_restart_read_the_stored_status() -> None:
    m = OperatorMetrics()
    m.reconciled({**BODY, "status": _status()}, action="", status=None, seconds=0.0)
    ns = {"namespace": "team-a", "model": "l3"}
    assert _value(m, "modelgrid_operator_models", **ns, phase="Ready") == 1
