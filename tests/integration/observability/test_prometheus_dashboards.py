"""Every PromQL expression of every dashboard panel, evaluated by a real Prometheus over what the
code really exports.

Prometheus (the Debian package, 1 s scrape interval, private data directory) scrapes three
targets: the shared local stack's replica (real Ray Serve + vLLM CPU on the tiny model), a
gateway in front of it (static config), and the real operator's ``/metrics`` while it reconciles
InferenceModels on kmock, the emulated cluster of the operator tests (one model that becomes
Ready as KubeRay would report it, one with an invalid spec). Traffic goes through the gateway
with the OpenAI SDK, streaming and not, with errors, in two waves so that rates see increases.
Then each expression, with Grafana's variables filled in, must parse and return a number; an
expression over a name the code does not export returns nothing and fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from emulated_cluster import (
    NAMESPACE,
    Cluster,
    OperatorThread,
    operator_settings,
    point_client_at,
)
from local_stack import Stack
from modelgrid_operator.handlers import OperatorConfig
from modelgrid_operator.k8s import Client
from modelgrid_operator.metrics import OperatorMetrics, serve_metrics
from observability_support import (
    Prometheus,
    PromQLError,
    Query,
    dashboards,
    free_port,
    gateway,
    has_number,
    panel_queries,
    prometheus,
    substitute,
    wait_for,
)
from polling import eventually

pytestmark = pytest.mark.integration

POOL = "local"
RATE_WINDOW = "1m"
TINY_SPEC = {
    "model": {"uri": "hf://org/tiny"},
    "pools": [{"name": POOL, "accelerator": "cpu", "minReplicas": 1, "maxReplicas": 1}],
}
BROKEN_SPEC = {  # no pools: the operator marks it Failed (InvalidSpec) on every reconcile
    "model": {"uri": "hf://org/tiny"},
    "pools": [],
}


@pytest.fixture()
def emulated(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """kmock with our resources declared, and the kubernetes client pointed at it."""
    return Cluster(kmock, point_client_at(kmock, tmp_path / "kubeconfig", monkeypatch))


def _traffic(base_url: str, model: str) -> int:
    """One wave through the gateway: chat and completions, streamed and not, and errors.

    Returns:
        How many requests the gateway answered.
    """
    with openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0) as client:
        messages = [{"role": "user", "content": "Say hello"}]
        client.chat.completions.create(model=model, messages=messages, max_tokens=8)
        for _ in range(2):
            stream = client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=16,
                stream=True,
                stream_options={"include_usage": True},
            )
            assert any(chunk.usage for chunk in stream)
        client.completions.create(model=model, prompt="Once upon a time", max_tokens=8)
        for _ in client.completions.create(
            model=model, prompt="Once upon a time", max_tokens=12, stream=True
        ):
            pass
        with pytest.raises(openai.NotFoundError):  # refused by the gateway: unknown model
            client.chat.completions.create(model="no-such-model", messages=messages)
        with pytest.raises(openai.BadRequestError):  # refused by the engine: over the context
            client.completions.create(model=model, prompt="hello " * 700, max_tokens=8)
        return 7


def _answered(prom: Prometheus) -> float:
    samples = prom.query("sum(modelgrid_gateway_requests_total)")
    return float(samples[0]["value"][1]) if samples else 0.0


def _evaluate(prom: Prometheus, queries: list[Query], values: dict[str, str]) -> list[str]:
    """Each query must parse and return at least one finite number; returns what failed."""
    failures = []
    for q in queries:
        expr = substitute(q.expr, values)
        try:
            samples = prom.query(expr)
        except PromQLError as exc:
            failures.append(f"{q.dashboard} / {q.panel} / {q.ref_id}: {exc}")
            continue
        if not has_number(samples):
            failures.append(f"{q.dashboard} / {q.panel} / {q.ref_id}: no data: {expr} -> {samples}")
    return failures


@contextlib.contextmanager
def _scraped(tmp_path: Path, stack: Stack, operator_url: str) -> Iterator[tuple[str, Prometheus]]:
    backends = [{"url": stack.url + "/v1", "pool": POOL}]
    config = {"models": [{"name": stack.model, "backends": backends}]}
    with (
        gateway(tmp_path, config) as gw,
        prometheus(
            tmp_path, {"gateway": gw.metrics_url, "replica": stack.url, "operator": operator_url}
        ) as prom,
    ):
        yield gw.url, prom


async def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    stack: Stack, emulated: Cluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    metrics = OperatorMetrics()
    metrics_port = free_port()
    server = serve_metrics(metrics, metrics_port, host="127.0.0.1")
    config = OperatorConfig(
        refresh_interval=0.5, client_factory=lambda: Client(emulated.api), metrics=metrics
    )
    try:
        # Started before the operator: starting them blocks this loop, which also serves kmock.
        with _scraped(tmp_path, stack, f"http://127.0.0.1:{metrics_port}") as (gw, prom):
            operator = OperatorThread(config, operator_settings()).start()
            try:
                await emulated.create_model(stack.model, TINY_SPEC)
                await emulated.create_model("broken", BROKEN_SPEC)
                await eventually(
                    lambda: metrics.registry.get_sample_value(
                        "modelgrid_operator_models",
                        {"namespace": NAMESPACE, "model": stack.model, "phase": "Scheduling"},
                    ),
                    timeout=30,
                    what="the model to be Scheduling",
                )
                # Play KubeRay: the Serve application runs, one worker pod of the pool is ready.
                await emulated.kuberay_serves(
                    stack.model, cluster=f"{stack.model}-x1", pools={POOL: 1}
                )

                sent = 0
                for _ in range(2):  # two waves, scrapes between and after: rates see increases
                    sent += await asyncio.to_thread(_traffic, gw, stack.model)
                    await asyncio.to_thread(
                        wait_for,
                        lambda sent=sent: _answered(prom) >= sent,
                        timeout=30,
                        what=f"Prometheus to scrape {sent} gateway answers",
                    )
                    await asyncio.to_thread(prom.wait_for_scrapes, 2)
                await asyncio.to_thread(
                    wait_for,
                    lambda: prom.query(
                        "modelgrid_operator_time_to_ready_seconds"
                        f'{{phase="total",model="{stack.model}"}}'
                    ),
                    timeout=30,
                    what="the operator's time to ready in Prometheus",
                )
                assert await asyncio.to_thread(prom.targets_up) == {
                    "gateway": "up",
                    "replica": "up",
                    "operator": "up",
                }

                values = {"model": stack.model, "__rate_interval": RATE_WINDOW}
                queries = [q for name, d in dashboards().items() for q in panel_queries(name, d)]
                assert len(queries) > 40
                failures = await asyncio.to_thread(_evaluate, prom, queries, values)
                assert not failures, "\n".join(failures)

                # The model variable lists the model, as Grafana's label_values() would.
                for name, dashboard in dashboards().items():
                    for variable in dashboard["templating"]["list"]:
                        if variable["type"] != "query":
                            continue
                        metric, label = (
                            variable["query"].removeprefix("label_values(")[:-1].split(", ")
                        )
                        listed = await asyncio.to_thread(
                            prom.get, f"/api/v1/label/{label}/values", **{"match[]": metric}
                        )
                        assert stack.model in listed, (name, variable["query"], listed)

                # The check can fail: a name the code does not export returns nothing.
                missing = Query(
                    "-", "-", "A", "sum(rate(modelgrid_gateway_requests[$__rate_interval]))"
                )
                assert await asyncio.to_thread(_evaluate, prom, [missing], values)
                print(
                    f"{len(queries)} dashboard queries returned data "
                    f"({time.monotonic() - started:.0f} s with the stack already up)"
                )
            finally:
                await operator.stop()
    finally:
        server.shutdown()
        server.server_close()
