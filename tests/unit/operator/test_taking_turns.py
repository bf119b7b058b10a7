"""A deleted model's reconcile in flight finishes before its children are deleted, and none runs
after: otherwise a RayService written by that reconcile outlives the model (no owner is left to
collect it where the operator, not Kubernetes' garbage collector, deletes children)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from modelgrid_operator import api, turns
from modelgrid_operator.config import OperatorConfig
from modelgrid_operator.reconcile import ModelGone
from modelgrid_operator.turns import TakingTurns

pytestmark = pytest.mark.unit

BODY = {"metadata": {"name": "demo", "namespace": "ns", "uid": "u-1"}}


async def test_forget_waits_out_the_reconcile_in_flight_and_refuses_later_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def slow_reconcile(*_: Any, **__: Any) -> Any:
        started.set()
        await release.wait()
        order.append("reconcile wrote its RayService")
        return turns.Outcome(
            status=None,
            phase=api.Phase.PENDING,
            previous_phase=None,
            action="created",
            message="",
        )

    monkeypatch.setattr(turns, "reconcile", slow_reconcile)
    config = OperatorConfig(client_factory=lambda: None)  # type: ignore[arg-type,return-value]
    models = TakingTurns(config, client=object())  # type: ignore[arg-type]

    in_flight = asyncio.create_task(models.reconcile(BODY))
    await started.wait()
    forgetting = asyncio.create_task(models.forget("u-1"))
    await asyncio.sleep(0)
    assert not forgetting.done()  # the deletion waits for the reconcile that is writing
    release.set()
    await in_flight
    await forgetting
    order.append("children deleted")
    assert order == ["reconcile wrote its RayService", "children deleted"]

    with pytest.raises(ModelGone):
        await models.reconcile(BODY)  # a refresh queued for the deleted model writes nothing
