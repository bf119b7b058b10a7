"""What the model's status says when the operator refuses to take, lose or tear down: pure
status computation from observations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from factories import make_model, pool, ready_pod, serving_rayservice
from modelgrid_operator import api
from modelgrid_operator.admission import Admission
from modelgrid_operator.status import Observation, compute_status
from modelgrid_serving.claims import Claim, LostName

pytestmark = [pytest.mark.unit, pytest.mark.security]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = make_model(pools=[pool("gpu", "nvidia")], aliases=["gpt-4o-mini"])
RUNNING = {"gpu": serving_rayservice("gpu", "demo-a")}
READY_POD = ready_pod("gpu", "demo-a")
OWNER = Claim("team-a", "llama", frozenset({"demo", "gpt-4o-mini"}), created=0.0)


def status(observation: Observation) -> api.InferenceModelStatus:
    return compute_status(
        MODEL,
        observation,
        previous=None,
        generation=1,
        endpoints={"gpu": "http://demo-serve-svc.ml.svc:8000"},
        now=T0,
        created=T0,
    )


def condition(s: api.InferenceModelStatus, kind: str) -> api.Condition:
    return next(c for c in s.conditions if c.type == kind)


def test_ownership_conflict_is_failed_and_names_the_owner() -> None:
    s = status(Observation({}, apply_error=(api.Reason.CONFLICT, "owned by Deployment x")))
    assert s.phase is api.Phase.FAILED
    assert condition(s, "RayServiceApplied").reason == "Conflict"
    assert condition(s, "Ready").message == "owned by Deployment x"


def test_tenancy_model_that_lost_every_name_is_failed_with_name_conflict() -> None:
    lost = tuple(LostName(n, OWNER) for n in ("demo", "gpt-4o-mini"))
    s = status(Observation(RUNNING, pods=[READY_POD], lost_names=lost))
    assert s.phase is api.Phase.FAILED
    names = condition(s, "NamesClaimed")
    assert (names.status, names.reason) == ("False", "NameConflict")
    assert "belongs to namespace team-a" in names.message
    assert "spec.shareNamesWith" in names.message


def test_tenancy_model_that_lost_an_alias_still_serves_its_name() -> None:
    s = status(Observation(RUNNING, pods=[READY_POD], lost_names=(LostName("gpt-4o-mini", OWNER),)))
    assert s.phase is api.Phase.READY
    assert condition(s, "NamesClaimed").status == "False"


def test_ownership_running_pool_refused_now_is_kept_and_keeps_serving() -> None:
    refused = Admission(
        "gpu",
        False,
        api.Reason.INSUFFICIENT_MEMORY,
        "pool gpu: needs 20 GiB; the pool is not deployed",
    )
    kept = refused.keep()
    assert kept.kept and kept.message.endswith(
        "(a running pool is never torn down for want of a node that fits now)"
    )
    s = status(Observation(RUNNING, pods=[READY_POD], admissions=(kept,)))
    assert s.phase is api.Phase.READY
    assert s.pools[0].desired_replicas == 1 and s.endpoint is not None
    admitted = condition(s, "MemoryAdmitted")
    assert (admitted.status, admitted.reason) == ("False", "InsufficientMemory")
    held = status(Observation(RUNNING, pods=[READY_POD], admissions=(kept,), held="pool gpu ..."))
    applied = condition(held, "RayServiceApplied")
    assert (applied.status, applied.reason, applied.message) == (
        "False",
        "KeptRunning",
        "pool gpu ...",
    )
