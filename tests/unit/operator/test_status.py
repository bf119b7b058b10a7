"""Phase judgement and time-to-ready, from observations, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import failing_pods as fp
import pytest
from factories import make_model, pool
from modelgrid_operator import api
from modelgrid_operator.status import Observation, compute_status, invalid_status

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = make_model(
    pools=[pool("gpu", "nvidia", minReplicas=2, maxReplicas=4), pool("mac", "apple")]
)


def rayservice(
    app_status: str | None = None, cluster: str = "demo-a", message: str = "", **per_pool: str
) -> dict[str, dict]:
    """Each pool's RayService (one application each) with the application in ``app_status``,
    or per pool."""
    services = {}
    for name in ("gpu", "mac"):
        status = {}
        if app_status or per_pool:
            apps = {f"demo-{name}": {"status": per_pool.get(name, app_status), "message": message}}
            status = {
                "activeServiceStatus": {"rayClusterName": cluster, "applicationStatuses": apps}
            }
        services[name] = {"metadata": {"name": f"demo-{name}-00000"}, "status": status}
    return services


def pods(cluster: str = "demo-a", **ready_per_pool: int) -> list[dict]:
    return [
        {
            "metadata": {"labels": {"modelgrid.io/pool": name, "ray.io/cluster": cluster}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
        for name, count in ready_per_pool.items()
        for _ in range(count)
    ]


def step(previous, observation, seconds):
    return compute_status(
        MODEL,
        observation,
        previous=previous,
        generation=1,
        endpoints={"gpu": "http://x/pools/gpu", "mac": "http://x/pools/mac"},
        now=T0 + timedelta(seconds=seconds),
        created=T0,
    )


def test_status_walks_phases_and_adds_time_to_ready():
    s = step(None, Observation({}), 0)
    assert s.phase is api.Phase.PENDING and s.endpoint is None
    s = step(s, Observation(rayservice()), 2)
    assert s.phase is api.Phase.SCHEDULING
    s = step(s, Observation(rayservice("DEPLOYING"), pods(gpu=2, mac=1)), 32)
    assert s.phase is api.Phase.LOADING
    s = step(s, Observation(rayservice("RUNNING"), pods(gpu=2, mac=1)), 92)
    assert s.phase is api.Phase.READY
    assert s.time_to_ready == api.PhaseTimes(pending=2, scheduling=30, loading=60, total=92)
    assert (s.ready_replicas, s.replicas, s.endpoint) == (3, "3/3", "http://x/pools/gpu/v1")
    assert [p.endpoint for p in s.pools] == ["http://x/pools/gpu", "http://x/pools/mac"]


def test_status_unchanged_world_gives_identical_status():
    first = step(None, Observation(rayservice("RUNNING"), pods(gpu=2, mac=1)), 5)
    again = step(first, Observation(rayservice("RUNNING"), pods(gpu=2, mac=1)), 50)
    assert again == first


def test_status_lost_replicas_after_ready_is_degraded_and_keeps_time_to_ready():
    ready = step(None, Observation(rayservice("RUNNING"), pods(gpu=2, mac=1)), 10)
    degraded = step(ready, Observation(rayservice("RUNNING"), pods(gpu=2)), 20)
    assert degraded.phase is api.Phase.DEGRADED
    assert "mac 0/1" in degraded.conditions[0].message
    assert degraded.time_to_ready == ready.time_to_ready


def test_status_counts_only_pods_of_the_serving_cluster():
    s = step(None, Observation(rayservice("RUNNING", cluster="new"), pods("old", gpu=2, mac=1)), 1)
    assert s.phase is api.Phase.SCHEDULING and s.ready_replicas == 0


def test_status_deploy_failed_is_failed_with_message():
    s = step(None, Observation(rayservice("DEPLOY_FAILED", message="CUDA out of memory")), 1)
    assert s.phase is api.Phase.FAILED
    assert s.conditions[0].reason == "DeployFailed"
    assert s.conditions[0].message == ("pool gpu: CUDA out of memory; pool mac: CUDA out of memory")


def test_status_condition_transition_time_moves_only_on_change():
    a = step(None, Observation(rayservice()), 1)
    b = step(a, Observation(rayservice("DEPLOYING"), pods(gpu=2, mac=1)), 9)
    ready_a, ready_b = a.conditions[0], b.conditions[0]
    assert ready_a.status == ready_b.status == "False"
    assert ready_b.last_transition_time == ready_a.last_transition_time
    assert ready_b.reason == "LoadingModel"


def test_status_invalid_spec_is_failed():
    s = invalid_status(None, "spec.pools[0].minReplicas: too big", generation=3, now=T0)
    assert s.phase is api.Phase.FAILED
    assert {c.type: c.reason for c in s.conditions} == {
        "Ready": "InvalidSpec",
        "SpecValid": "InvalidSpec",
    }
    assert s.observed_generation == 3


def test_status_applied_condition_is_consistent_before_the_child_exists():
    s = step(None, Observation({}), 0)
    applied = next(c for c in s.conditions if c.type == "RayServiceApplied")
    assert (applied.status, applied.reason) == ("False", "WaitingForRayService")


def test_status_one_pool_failed_to_deploy_other_serving_is_degraded_not_failed():
    s = step(
        None,
        Observation(
            rayservice(gpu="RUNNING", mac="DEPLOY_FAILED", message="no Metal"), pods(gpu=2, mac=1)
        ),
        1,
    )
    assert s.phase is api.Phase.DEGRADED
    assert (s.conditions[0].reason, s.conditions[0].message) == (
        "DeployFailed",
        "pool mac: no Metal",
    )
    # Its pod is up, but nothing serves behind it: the gateway must not route to that pool.
    assert {p.name: p.ready_replicas for p in s.pools} == {"gpu": 2, "mac": 0}
    assert (s.ready_replicas, s.replicas) == (2, "2/3")


def _condition(status: api.InferenceModelStatus, kind: str) -> api.Condition:
    return next(c for c in status.conditions if c.type == kind)


def pull_failing(pool_name: str = "mac") -> dict:
    return fp.pod(
        "demo-mac-a-worker-x", cluster="demo-a", pool=pool_name, status=fp.pulling_fails()
    )


def test_status_a_pod_that_cannot_start_is_said_at_once_and_fails_the_model_after_the_deadline():
    seen = step(None, Observation(rayservice(), [pull_failing()]), 10)
    assert seen.phase is api.Phase.SCHEDULING
    ready, healthy = _condition(seen, "Ready"), _condition(seen, "PodsHealthy")
    said = (
        "ImagePullBackOff: pod demo-mac-a-worker-x container ray-worker: "
        f'Back-off pulling image "{fp.IMAGE}"'
    )
    assert (ready.reason, ready.message) == ("ImagePullBackOff", said)
    assert (healthy.status, healthy.reason, healthy.message) == ("False", "ImagePullBackOff", said)
    assert [(f.pool, f.since) for f in seen.pod_failures] == [("mac", "2026-01-01T00:00:10Z")]

    # The deadline (300 s) counts from the first sighting, which the stored status keeps.
    waiting = step(seen, Observation(rayservice(), [pull_failing()]), 309)
    assert waiting.phase is api.Phase.SCHEDULING
    failed = step(waiting, Observation(rayservice(), [pull_failing()]), 310)
    assert failed.phase is api.Phase.FAILED
    assert _condition(failed, "Ready").message == f"pods failing for over 300s: {said}"


def test_status_a_failing_pool_past_the_deadline_is_degraded_while_another_pool_serves():
    observation = Observation(
        rayservice(gpu="RUNNING", mac="DEPLOYING"), [*pods(gpu=2), pull_failing()]
    )
    s = step(None, observation, 0)
    assert s.phase is api.Phase.SCHEDULING
    s = step(s, observation, 301)
    assert s.phase is api.Phase.DEGRADED
    assert _condition(s, "Ready").reason == "ImagePullBackOff"
    assert _condition(s, "Ready").message.endswith("; pools still serving: gpu")


def test_status_the_deadline_is_the_operators_setting():
    s = compute_status(
        MODEL,
        Observation(rayservice(), [pull_failing()]),
        previous=None,
        generation=1,
        endpoints={},
        now=T0,
        pod_failure_deadline_seconds=0,
    )
    assert s.phase is api.Phase.FAILED


def test_status_a_ready_model_with_a_failing_extra_pod_stays_ready_and_says_so():
    unplaced = fp.pod(
        "demo-gpu-a-worker-z", cluster="demo-a", pool="gpu", status=fp.unschedulable()
    )
    s = step(None, Observation(rayservice("RUNNING"), [*pods(gpu=2, mac=1), unplaced]), 1000)
    assert s.phase is api.Phase.READY
    healthy = _condition(s, "PodsHealthy")
    assert (healthy.status, healthy.reason) == ("False", "Unschedulable")
    assert healthy.message == f"Unschedulable: pod demo-gpu-a-worker-z: {fp.NO_GPU}"


def test_status_pods_that_recover_clear_the_failure():
    failing = step(None, Observation(rayservice(), [pull_failing()]), 1)
    fixed = step(failing, Observation(rayservice("DEPLOYING"), pods(gpu=2, mac=1)), 400)
    assert fixed.phase is api.Phase.LOADING and fixed.pod_failures == []
    healthy = _condition(fixed, "PodsHealthy")
    assert (healthy.status, healthy.reason) == ("True", "NoFailingPods")
