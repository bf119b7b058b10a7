"""How the operator runs: the settings every handler is bound to (:func:`.handlers.build_registry`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from modelgrid_operator.k8s import Client
from modelgrid_operator.metrics import OperatorMetrics
from modelgrid_operator.reconcile import FactsReader, read_local_facts
from modelgrid_operator.settings import RenderSettings


@dataclass(frozen=True)
class OperatorConfig:
    """How the operator runs.

    Attributes:
        render: images and cluster conventions for the renderers.
        refresh_interval: seconds between reconciles of every model from memory (no API reads):
            what changes with time alone (a pod failing past its deadline, a late Ray cluster)
            shows within this. Everything else follows the watch events at once.
        resync_interval: seconds in which every model is reconciled once from the API server
            (its reads spread over the interval): the safety net for an event the watches
            missed. controller-runtime's default for the same is ten hours.
        client_factory: makes the API client once the operator starts.
        clock: the current time; tests may pin it.
        metrics: where reconciles and model status are counted (``--metrics-port`` serves it).
        read_facts: what the memory admission reads of a model's size beyond its spec (a model
            directory it can see; ``--hub-metadata`` adds the Hugging Face Hub).
    """

    render: RenderSettings = field(default_factory=RenderSettings)
    refresh_interval: float = 60.0
    resync_interval: float = 3600.0
    client_factory: Callable[[], Client] = Client.from_environment
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    read_facts: FactsReader = read_local_facts
