"""The operator's Prometheus metrics: the ``modelgrid_operator_*`` families of the vocabulary
(:mod:`modelgrid_serving.metrics`), kept from what each reconcile did and the status it wrote.

The ``model`` label is the served model name (what the gateway and the replicas call the model),
so one dashboard variable selects a model across all three; ``namespace`` tells apart models of
the same name in different namespaces. Served with ``modelgrid operator --metrics-port``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelgrid_serving.metrics import CONTENT_TYPE, OPERATOR, MetricFamilies
from prometheus_client import start_http_server

from modelgrid_operator import api

__all__ = ["CONTENT_TYPE", "OperatorMetrics", "model_label", "serve_metrics"]

_FAILED_APPLY = {api.Reason.KUBERAY_MISSING.value, api.Reason.APPLY_FAILED.value}
_TIME_TO_READY_PHASES = ("pending", "scheduling", "loading", "total")


def model_label(body: Mapping[str, Any]) -> tuple[str, str]:
    """``(namespace, model)`` labels of an InferenceModel: its served name, else its name."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    served = spec.get("servedModelName") if isinstance(spec, Mapping) else None
    return str(meta.get("namespace") or "default"), str(served or meta.get("name") or "-")


def _conditions(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in status.get("conditions") or () if isinstance(c, Mapping)}


class OperatorMetrics(MetricFamilies):
    """The metric families of one operator process (the ``OPERATOR`` vocabulary)."""

    def __init__(self) -> None:
        super().__init__(OPERATOR)
        self._pools: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self._statuses: dict[tuple[str, str], Mapping[str, Any]] = {}

    def reconciled(
        self,
        body: Mapping[str, Any],
        *,
        action: str,
        status: Mapping[str, Any] | None,
        seconds: float,
    ) -> None:
        """One reconcile ended with ``status`` written, or None: the stored one still holds.

        The stored status is the one this process last saw written, else the body's (after a
        restart); a status in a body may be older than the last one written.
        """
        namespace, model = model_label(body)
        key = (namespace, model)
        if status is None:
            status = self._statuses.get(key) or body.get("status") or {}
        self._statuses[key] = status
        conditions = _conditions(status)
        valid = conditions.get(api.ConditionType.SPEC_VALID.value, {})
        applied = conditions.get(api.ConditionType.RAY_SERVICE_APPLIED.value, {})
        if valid.get("status") == "False":
            result, reason = "invalid", str(valid.get("reason") or api.Reason.INVALID_SPEC.value)
        elif applied.get("reason") in _FAILED_APPLY:
            result, reason = "apply_failed", str(applied["reason"])
        else:
            result, reason = action or "unchanged", ""
        self.reconciles_total.labels(namespace, model, result).inc()
        if reason:
            self.reconcile_errors_total.labels(namespace, model, reason).inc()
        self.reconcile_duration_seconds.observe(seconds)
        self._observe_status(namespace, model, status)

    def failed(self, body: Mapping[str, Any], exc: BaseException, *, seconds: float) -> None:
        """One reconcile raised (kopf retries it)."""
        namespace, model = model_label(body)
        self.reconciles_total.labels(namespace, model, "error").inc()
        self.reconcile_errors_total.labels(namespace, model, type(exc).__name__).inc()
        self.reconcile_duration_seconds.observe(seconds)

    def forget(self, body: Mapping[str, Any]) -> None:
        """The model is deleted: its gauges go (its counters stay, as counters do)."""
        namespace, model = model_label(body)
        self._statuses.pop((namespace, model), None)
        for phase in api.Phase:
            self._remove(self.models, namespace, model, phase.value)
        for phase in _TIME_TO_READY_PHASES:
            self._remove(self.time_to_ready_seconds, namespace, model, phase)
        for labels in self._pools.pop((namespace, model), set()):
            self._remove(self.replicas_ready, *labels)
            self._remove(self.replicas_desired, *labels)

    def _observe_status(self, namespace: str, model: str, status: Mapping[str, Any]) -> None:
        phase = status.get("phase")
        if phase:
            for candidate in api.Phase:
                self.models.labels(namespace, model, candidate.value).set(
                    1 if candidate.value == phase else 0
                )
        pools: set[tuple[str, ...]] = set()
        for pool in status.get("pools") or ():
            labels = (
                namespace,
                model,
                str(pool.get("name")),
                str(pool.get("accelerator")),
                str(pool.get("engine")),
            )
            pools.add(labels)
            self.replicas_ready.labels(*labels).set(pool.get("readyReplicas") or 0)
            self.replicas_desired.labels(*labels).set(pool.get("desiredReplicas") or 0)
        for gone in self._pools.get((namespace, model), set()) - pools:
            self._remove(self.replicas_ready, *gone)
            self._remove(self.replicas_desired, *gone)
        self._pools[(namespace, model)] = pools
        times = status.get("timeToReady") or {}
        for name in _TIME_TO_READY_PHASES:
            value = times.get(name)
            if value is not None:
                self.time_to_ready_seconds.labels(namespace, model, name).set(value)

    @staticmethod
    def _remove(family: Any, *labels: str) -> None:
        try:
            family.remove(*labels)
        except KeyError:
            pass


def serve_metrics(metrics: OperatorMetrics, port: int, host: str = "0.0.0.0") -> Any:
    """Serve ``metrics`` on ``http://host:port/metrics`` from a daemon thread.

    Returns:
        The HTTP server (``shutdown()`` stops it).
    """
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
