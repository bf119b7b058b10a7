"""Concurrent reconciles of one model (kopf's timer and a change handler) take turns: the second
reads the status the first stored, so a transition is timed once."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import model_doc
from modelgrid_operator.handlers import OperatorConfig, TakingTurns
from modelgrid_operator.reconcile import ModelGone

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class StoredModel:
    """One InferenceModel (of one pool) and its RayService as an API server would store them;
    every call yields to the event loop first, as a real round trip does."""

    def __init__(self) -> None:
        self.model: dict[str, Any] | None = model_doc()
        self.model["metadata"].update(
            uid="u1", generation=1, creationTimestamp="2026-01-01T00:00:00Z"
        )
        self.rayservice: dict[str, Any] | None = None
        self.network_policy: dict[str, Any] | None = None
        self.status_writes: list[dict[str, Any]] = []

    async def get_model(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return copy.deepcopy(self.model)

    async def patch_model_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        await asyncio.sleep(0)
        if self.model is None:
            return False
        self.status_writes.append(status)
        self.model["status"] = {**self.model.get("status", {}), **status}
        return True

    async def list_nodes(self) -> None:
        return None  # no node listing: nothing is refused for memory

    async def get_rayservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return copy.deepcopy(self.rayservice)

    async def create_rayservice(self, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        self.rayservice = copy.deepcopy(body)
        return body

    async def list_model_pods(self, namespace: str, model: str) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return []

    async def get_network_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return copy.deepcopy(self.network_policy)

    async def create_network_policy(self, body: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.network_policy = copy.deepcopy(body)


def turns(stored: StoredModel) -> TakingTurns:
    ticks = iter(range(1000))
    config = OperatorConfig(
        clock=lambda: T0 + timedelta(seconds=next(ticks)), read_facts=lambda model: None
    )
    return TakingTurns(config, client=stored)  # type: ignore[arg-type]


async def test_two_concurrent_reconciles_time_a_transition_once() -> None:
    stored = StoredModel()
    models = turns(stored)
    body = copy.deepcopy(stored.model)
    assert body is not None

    first, second = await asyncio.gather(models.reconcile(body), models.reconcile(body))

    assert (first.previous_phase, first.phase.value) == (None, "Scheduling")
    assert second.previous_phase == first.phase and second.status is None  # nothing new to write
    assert len(stored.status_writes) == 1
    assert stored.model is not None
    assert stored.model["status"]["phaseSince"] == "2026-01-01T00:00:00Z"  # the first one's clock


async def test_a_model_deleted_before_its_status_is_written_is_gone() -> None:
    stored = StoredModel()
    models = turns(stored)
    body = copy.deepcopy(stored.model)
    assert body is not None

    async def delete_meanwhile(namespace: str, name: str, status: dict[str, Any]) -> bool:
        stored.model = None
        return await StoredModel.patch_model_status(stored, namespace, name, status)

    stored.patch_model_status = delete_meanwhile  # type: ignore[method-assign]
    with pytest.raises(ModelGone):
        await models.reconcile(body)
