"""While a model moves to one RayService per pool, the status follows what serves each pool."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from factories import make_model, pool, ready_pod, serving_rayservice
from modelgrid_operator import api
from modelgrid_operator.handover import stand_ins
from modelgrid_operator.status import Observation, compute_status

pytestmark = pytest.mark.unit

TWO = make_model(pools=[pool("gpu", "nvidia"), pool("mac", "apple")])
ONE = make_model()
OWN = {"gpu": "http://demo-gpu-own-serve-svc:8000", "mac": "http://demo-mac-own-serve-svc:8000"}


def earlier_operators(*apps: str, status: str = "RUNNING") -> dict:
    """The one RayService of an operator before one per pool, serving ``apps`` on cluster old."""
    return {
        "metadata": {"name": "demo"},
        "status": {
            "activeServiceStatus": {
                "rayClusterName": "old",
                "applicationStatuses": {a: {"status": status} for a in apps},
            }
        },
    }


def own_starting(pool_name: str) -> dict:
    """A pool's own RayService whose first cluster is not serving yet."""
    return {
        "metadata": {"name": f"demo-{pool_name}-own"},
        "status": {"pendingServiceStatus": {"rayClusterName": f"new-{pool_name}"}},
    }


def test_handover_a_pool_whose_own_rayservice_does_not_serve_stands_on_the_old_one():
    old = earlier_operators("demo-gpu", "demo-mac")
    found = stand_ins(
        TWO,
        {"gpu": serving_rayservice("gpu"), "mac": own_starting("mac")},
        {"demo": old},
    )
    assert list(found) == ["mac"]
    assert (found["mac"].name, found["mac"].application, found["mac"].route) == (
        "demo",
        "demo-mac",
        "/pools/mac",
    )


def test_handover_the_one_application_of_a_one_pool_model_serves_at_the_root():
    found = stand_ins(ONE, {"gpu": own_starting("gpu")}, {"demo": earlier_operators("demo")})
    assert (found["gpu"].application, found["gpu"].route) == ("demo", "")


def test_handover_an_old_rayservice_that_does_not_run_the_pool_stands_in_for_nothing():
    assert stand_ins(ONE, {}, {"demo": earlier_operators("demo", status="DEPLOYING")}) == {}
    assert stand_ins(TWO, {}, {"demo": earlier_operators("demo-gpu")}).keys() == {"gpu"}


def test_handover_status_routes_to_the_old_rayservice_until_the_pools_own_serves():
    old = earlier_operators("demo-gpu", "demo-mac")
    observation = Observation(
        {"gpu": serving_rayservice("gpu"), "mac": own_starting("mac")},
        pods=[ready_pod("gpu"), ready_pod("mac", "old")],
        retiring={"demo": old},
    )
    endpoints = {"gpu": OWN["gpu"], "mac": "http://demo-serve-svc:8000/pools/mac"}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    s = compute_status(TWO, observation, previous=None, generation=1, endpoints=endpoints, now=now)
    assert s.phase is api.Phase.READY
    assert [(p.name, p.ray_service, p.ready_replicas) for p in s.pools] == [
        ("gpu", "demo-gpu-00000", 1),
        ("mac", "demo", 1),
    ]
    assert s.retiring_ray_services == ["demo"]
