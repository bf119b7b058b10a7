"""Run the real kopf operator in-process against kmock, kopf's Kubernetes API emulator.

kmock validates nothing and runs no controllers: tests play KubeRay's part by writing the
RayService's status and the worker pods themselves. Schema and CEL fidelity live elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from emulated_cluster import (
    NAMESPACE,
    Cluster,
    OperatorThread,
    operator_settings,
    point_client_at,
)
from modelgrid_operator.handlers import OperatorConfig
from modelgrid_operator.k8s import Client
from modelgrid_operator.leadership import Election
from modelgrid_operator.metrics import OperatorMetrics
from modelgrid_operator.settings import RenderSettings


@pytest.fixture()
def cluster(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """kmock with our resources declared and a kubeconfig pointing at it."""
    return Cluster(kmock, point_client_at(kmock, tmp_path / "kubeconfig", monkeypatch))


@pytest.fixture()
async def operator(cluster: Cluster) -> AsyncIterator[Callable[..., Awaitable[OperatorThread]]]:
    """Start (and restart) the real operator; every one still running is stopped at teardown.

    ``refresh``: its reconciles from memory; ``resync``: its reconciles from the API server (by
    default none in a test: the watches carry every change); ``election``: reconcile only while
    holding that Lease."""
    running: list[OperatorThread] = []

    async def start(
        refresh: float = 0.2,
        *,
        resync: float = 3600.0,
        events: bool = False,
        client: Client | None = None,
        render: RenderSettings | None = None,
        namespaces: tuple[str, ...] = (NAMESPACE,),
        election: Election | None = None,
    ) -> OperatorThread:
        settings = operator_settings(events=events)
        metrics = OperatorMetrics()
        cluster.operator_metrics.append(metrics)
        config = OperatorConfig(
            metrics=metrics,
            render=render or RenderSettings(),
            refresh_interval=refresh,
            resync_interval=resync,
            client_factory=lambda: client or Client(cluster.api),
        )
        handle = OperatorThread(
            config, settings, namespaces, election=election and (election, cluster.api)
        ).start()
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.stop()
