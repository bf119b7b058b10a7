"""Pods that cannot start, read from pod objects as the kubelet and the scheduler write them."""

from __future__ import annotations

import failing_pods as fp
import pytest
from modelgrid_operator import api
from modelgrid_operator.pod_failures import (
    MESSAGE_LIMIT,
    describe,
    new_failures,
    observe,
    pools_of_clusters,
)

pytestmark = pytest.mark.unit

NOW = "2026-01-01T00:10:00Z"


def seen(*pods: dict, previous=(), clusters=None) -> list[api.PodFailure]:
    return observe(pods, clusters or {}, previous=list(previous), since=NOW)


def test_pod_failures_image_pull_back_off_names_pod_container_and_image():
    [failure] = seen(fp.pod("demo-cpu-c1-worker-abc", status=fp.pulling_fails()))
    assert failure == api.PodFailure(
        pool="cpu",
        pod="demo-cpu-c1-worker-abc",
        container="ray-worker",
        reason="ImagePullBackOff",
        message=f'Back-off pulling image "{fp.IMAGE}"',
        since=NOW,
    )
    assert describe(failure) == (
        "ImagePullBackOff: pod demo-cpu-c1-worker-abc container ray-worker: "
        f'Back-off pulling image "{fp.IMAGE}"'
    )


def test_pod_failures_err_image_pull_carries_the_registrys_answer():
    [failure] = seen(fp.pod("w", status=fp.pulling_fails("ErrImagePull")))
    assert failure.reason == "ErrImagePull"
    assert failure.message.endswith(f"{fp.IMAGE}: not found")


def test_pod_failures_crash_loop_says_how_the_container_last_ended():
    [failure] = seen(fp.pod("w", status=fp.crash_looping()))
    assert failure.reason == "CrashLoopBackOff"
    assert failure.message.startswith("back-off 5m0s restarting failed container=ray-worker")
    assert failure.message.endswith("; last exit code 137 (OOMKilled)")


def test_pod_failures_unschedulable_has_the_schedulers_message_and_no_container():
    [failure] = seen(fp.pod("w", pool="gpu", status=fp.unschedulable()))
    assert (failure.reason, failure.container, failure.pool) == ("Unschedulable", "", "gpu")
    assert describe(failure) == f"Unschedulable: pod w: {fp.NO_GPU}"


def test_pod_failures_init_container_that_exited_non_zero():
    [failure] = seen(fp.pod("w", status=fp.init_failed(message="no space left on device")))
    assert (failure.reason, failure.container, failure.init) == (
        "InitContainerFailed",
        "generate-model",
        True,
    )
    assert describe(failure) == (
        "InitContainerFailed: pod w init container generate-model: "
        "exited with code 1 (Error): no space left on device"
    )


def test_pod_failures_init_container_in_crash_loop():
    [failure] = seen(fp.pod("w", status=fp.init_crash_looping()))
    assert (failure.reason, failure.container, failure.init) == (
        "CrashLoopBackOff",
        "generate-model",
        True,
    )
    assert failure.message.endswith("last exit code 1 (Error)")


def test_pod_failures_container_config_error_names_the_missing_secret():
    [failure] = seen(fp.pod("w", status=fp.config_missing()))
    assert describe(failure) == (
        'CreateContainerConfigError: pod w container ray-worker: secret "hf-token" not found'
    )


def test_pod_failures_a_head_pod_gets_its_pool_from_the_rayservice_naming_its_cluster():
    rayservices = {
        "cpu": {"status": {"activeServiceStatus": {"rayClusterName": "demo-cpu-c1"}}},
        "gpu": {"status": {"pendingServiceStatus": {"rayClusterName": "demo-gpu-c2"}}},
    }
    clusters = pools_of_clusters(rayservices)
    assert clusters == {"demo-cpu-c1": "cpu", "demo-gpu-c2": "gpu"}
    head = fp.pod(
        "demo-gpu-c2-head-x",
        cluster="demo-gpu-c2",
        pool=None,
        status=fp.pulling_fails(container="ray-head"),
    )
    [failure] = seen(head, clusters=clusters)
    assert (failure.pool, failure.container) == ("gpu", "ray-head")


@pytest.mark.parametrize(
    "status",
    [
        fp.starting(),
        {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]},
        {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        {},
    ],
    ids=["container-creating", "being-scheduled", "running", "no-status-yet"],
)
def test_pod_failures_pods_on_their_way_or_running_are_no_failure(status):
    assert seen(fp.pod("w", status=status)) == []


def test_pod_failures_a_pod_being_deleted_is_left_to_its_replacement():
    going = fp.pod("w", status=fp.crash_looping())
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:09:00Z"
    assert seen(going) == []


def test_pod_failures_pods_failing_alike_are_one_failure_named_by_the_first_pod():
    [failure] = seen(
        fp.pod("w-b", status=fp.pulling_fails("ErrImagePull")),
        fp.pod("w-a", status=fp.pulling_fails()),
        fp.pod("w-c", status=fp.pulling_fails()),
    )
    assert (failure.pod, failure.pods, failure.reason) == ("w-a", 3, "ImagePullBackOff")
    assert "pod w-a container ray-worker (and 2 other pods):" in describe(failure)


def test_pod_failures_keep_when_they_were_first_seen_across_the_pull_retry_flip():
    first = seen(fp.pod("w", status=fp.pulling_fails("ErrImagePull")))
    earlier = [first[0].model_copy(update={"since": "2026-01-01T00:00:00Z"})]
    [again] = seen(fp.pod("w", status=fp.pulling_fails("ImagePullBackOff")), previous=earlier)
    assert again.since == "2026-01-01T00:00:00Z"
    assert new_failures(earlier, [again]) == []


def test_pod_failures_a_different_failure_of_the_same_container_is_new():
    before = seen(fp.pod("w", status=fp.config_missing()))
    after = seen(fp.pod("w", status=fp.crash_looping()), previous=before)
    assert [f.reason for f in new_failures(before, after)] == ["CrashLoopBackOff"]
    assert after[0].since == NOW


def test_pod_failures_a_containers_long_termination_message_is_cut():
    status = fp.init_failed(message="x" * 5000 + "\n\nmore")
    [failure] = seen(fp.pod("w", status=status))
    assert len(failure.message) == MESSAGE_LIMIT
    assert failure.message.endswith("…")
