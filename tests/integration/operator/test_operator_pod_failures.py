"""Pods that cannot start: the operator against pod objects as the kubelet and the scheduler
leave them (kmock runs neither: each test writes the pod's status), and what the model's status
and Events say of them."""

from __future__ import annotations

import failing_pods as fp
import pytest
from modelgrid_operator.settings import RenderSettings
from polling import eventually

pytestmark = pytest.mark.integration

CPU = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [{"name": "cpu", "accelerator": "cpu", "minReplicas": 1}],
}
TWO_POOLS = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [
        {"name": "cpu", "accelerator": "cpu", "minReplicas": 1},
        {"name": "gpu", "accelerator": "nvidia", "minReplicas": 1},
    ],
}
WORKER, HEAD = "demo-cpu-c1-worker-x7k2p", "demo-cpu-c1-head-9z8lq"
PULL = f'Back-off pulling image "{fp.IMAGE}"'


async def _model_with_cluster(cluster, spec=CPU) -> None:
    """The model, its RayService, and the Ray cluster KubeRay made for its first pool."""
    await cluster.create_model("demo", spec)
    await eventually(lambda: cluster.rayservice("demo"), what="RayService created")
    await cluster.kuberay_builds_cluster("demo", "cpu", "demo-cpu-c1")


def _failures(cluster) -> list[dict]:
    return ((cluster.model("demo") or {}).get("status") or {}).get("podFailures") or []


@pytest.mark.parametrize(
    ("pod", "reason", "message"),
    [
        (
            fp.pod(WORKER, status=fp.pulling_fails()),
            "ImagePullBackOff",
            f"ImagePullBackOff: pod {WORKER} container ray-worker: {PULL}",
        ),
        (
            fp.pod(HEAD, pool=None, status=fp.pulling_fails("ErrImagePull", "ray-head")),
            "ErrImagePull",
            f"ErrImagePull: pod {HEAD} container ray-head: {fp.PULL_NOT_FOUND}",
        ),
        (
            fp.pod(WORKER, status=fp.crash_looping()),
            "CrashLoopBackOff",
            (
                f"CrashLoopBackOff: pod {WORKER} container ray-worker: back-off 5m0s restarting "
                "failed container=ray-worker pod=demo-cpu-c1-worker-x7k2p_default"
                "(6f1c0d3e-0b5e-4c1e-9d1a-0c3a5c7d9e11); last exit code 137 (OOMKilled)"
            ),
        ),
        (
            fp.pod(WORKER, status=fp.unschedulable()),
            "Unschedulable",
            f"Unschedulable: pod {WORKER}: {fp.NO_GPU}",
        ),
        (
            fp.pod(WORKER, status=fp.init_failed(message="model download failed")),
            "InitContainerFailed",
            (
                f"InitContainerFailed: pod {WORKER} init container generate-model: exited with "
                "code 1 (Error): model download failed"
            ),
        ),
        (
            fp.pod(WORKER, status=fp.init_crash_looping()),
            "CrashLoopBackOff",
            (
                f"CrashLoopBackOff: pod {WORKER} init container generate-model: back-off 40s "
                "restarting failed container=generate-model pod=demo-cpu-c1-w_default; last exit "
                "code 1 (Error)"
            ),
        ),
        (
            fp.pod(WORKER, status=fp.config_missing()),
            "CreateContainerConfigError",
            (
                f'CreateContainerConfigError: pod {WORKER} container ray-worker: secret "hf-token" '
                "not found"
            ),
        ),
    ],
    ids=[
        "image-pull-back-off",
        "head-err-image-pull",
        "crash-loop",
        "unschedulable",
        "init-exited",
        "init-crash-loop",
        "config-error",
    ],
)
async def test_pod_failures_each_state_is_said_with_the_pods_own_reason(
    cluster, operator, pod, reason, message
):
    await operator()
    await _model_with_cluster(cluster)
    await cluster.create_pod(pod)
    healthy = await cluster.condition_reaches("demo", "PodsHealthy", reason)
    assert (healthy["status"], healthy["message"]) == ("False", message)
    ready = cluster.condition("demo", "Ready")
    assert (ready["reason"], ready["message"]) == (reason, message)
    assert cluster.phase("demo") == "Scheduling"  # within the deadline
    [failure] = _failures(cluster)
    assert (failure["pool"], failure["pod"]) == ("cpu", pod["metadata"]["name"])


async def test_pod_failures_fail_the_model_after_the_deadline_kept_across_a_restart(
    cluster, operator
):
    first = await operator()
    await _model_with_cluster(cluster)
    await cluster.create_pod(fp.pod(WORKER, status=fp.pulling_fails()))
    await cluster.condition_reaches("demo", "PodsHealthy", "ImagePullBackOff")
    [seen] = _failures(cluster)
    await cluster.reconciled("demo")  # under the default deadline (300 s): no change
    assert cluster.phase("demo") == "Scheduling"
    await first.stop()

    # A restarted operator with a deadline already past since the first sighting.
    await operator(render=RenderSettings(pod_failure_deadline_seconds=1))
    await eventually(lambda: cluster.phase("demo") == "Failed", what="phase Failed")
    assert _failures(cluster)[0]["since"] == seen["since"]
    assert cluster.condition("demo", "Ready")["message"] == (
        f"pods failing for over 1s: ImagePullBackOff: pod {WORKER} container ray-worker: {PULL}"
    )

    # The image is fixed: the pod runs, the model goes on (and is no longer Failed).
    await cluster.kuberay_serves("demo", cluster="demo-cpu-c1", pools={})
    await cluster.kubelet_says(
        WORKER,
        {"conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": []},
    )
    await eventually(lambda: cluster.phase("demo") == "Ready", what="phase Ready")
    assert cluster.condition("demo", "PodsHealthy")["reason"] == "NoFailingPods"
    assert _failures(cluster) == []


async def test_pod_failures_a_failing_pool_is_degraded_while_another_serves(cluster, operator):
    await operator(render=RenderSettings(pod_failure_deadline_seconds=1))
    await _model_with_cluster(cluster, TWO_POOLS)
    await cluster.kuberay_serves("demo", cluster="demo-cpu-c1", pools={"cpu": 1}, apps=("cpu",))
    gpu = fp.pod(
        "demo-gpu-c1-worker-a", cluster="demo-gpu-c1", pool="gpu", status=fp.unschedulable()
    )
    await cluster.create_pod(gpu)
    await eventually(lambda: cluster.phase("demo") == "Degraded", what="phase Degraded")
    ready = cluster.condition("demo", "Ready")
    assert ready["reason"] == "Unschedulable"
    assert ready["message"] == (
        f"pods failing for over 1s: Unschedulable: pod demo-gpu-c1-worker-a: {fp.NO_GPU}; "
        "pools still serving: cpu"
    )


async def test_pod_failures_each_new_failure_posts_one_warning_event(cluster, operator):
    await operator(events=True)
    await _model_with_cluster(cluster)
    await cluster.create_pod(fp.pod(WORKER, status=fp.pulling_fails("ErrImagePull")))

    def warnings() -> list[dict]:
        return [
            r.data
            for r in cluster.writes("/events", "POST")
            if isinstance(r.data, dict) and r.data.get("type") == "Warning"
        ]

    def about_pods() -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in warnings() if "pod " in e["message"]]

    await eventually(about_pods, what="a Warning Event for the failing pod")
    assert about_pods() == [
        ("ErrImagePull", f"ErrImagePull: pod {WORKER} container ray-worker: {fp.PULL_NOT_FOUND}")
    ]
    assert warnings()[0]["involvedObject"]["name"] == "demo"

    # The kubelet backs off and tries again: the same failure, no second Event.
    await cluster.kubelet_says(WORKER, fp.pulling_fails())
    await cluster.condition_reaches("demo", "PodsHealthy", "ImagePullBackOff")
    await cluster.reconciled("demo", times=3)  # Events are posted after the reconcile
    assert len(about_pods()) == 1

    # Another failure: one more Event.
    await cluster.create_pod(fp.pod(HEAD, pool=None, status=fp.config_missing("ray-head")))
    await eventually(lambda: len(about_pods()) == 2, what="a second Warning Event")
    assert about_pods()[1][0] == "CreateContainerConfigError"
    await cluster.reconciled("demo", times=3)
    assert len(about_pods()) == 2
