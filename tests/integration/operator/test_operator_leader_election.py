"""Leader election on one emulated API server: of two operators only the Lease's holder
reconciles, the other takes over when it stops (at once when it hands the Lease back, after the
lease duration when it died holding it), and a leader whose Lease is taken stops (issue 21).

kmock keeps no resourceVersion, so two candidates racing for a free Lease at the same instant
(the API server refuses the second replace with 409) is not played here; the Lease's timings
are: lease 3 s, renew deadline 2 s, retry 1 s.
"""

from __future__ import annotations

import asyncio
import datetime
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import kubernetes
import pytest
from emulated_cluster import NAMESPACE
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
from local_stack import free_port
from modelgrid_operator.leadership import Election, LeadershipLost, _Lease
from polling import eventually

pytestmark = pytest.mark.integration

SPEC = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [{"name": "cpu", "accelerator": "cpu"}],
    "serving": {"maxConcurrentRequests": 8},
}
LEASES = "coordination.k8s.io/v1/leases"
LEASE = "modelgrid-operator"
TIMINGS = {"lease_seconds": 3, "renew_seconds": 2, "retry_seconds": 1}


def election(identity: str, **timings: int) -> Election:
    return Election(namespace=NAMESPACE, name=LEASE, identity=identity, **{**TIMINGS, **timings})


def holder(cluster) -> str | None:
    return ((cluster.get(LEASES, LEASE) or {}).get("spec") or {}).get("holderIdentity")


def lease_reads(cluster) -> int:
    return len(cluster.writes(f"/leases/{LEASE}", "GET"))


async def give_lease_to(cluster, identity: str) -> None:
    """Write the Lease as another candidate would that just took it (then never renews it)."""
    await asyncio.to_thread(_write_lease, cluster, identity)


def _write_lease(cluster, identity: str) -> None:
    leases = kubernetes.client.CoordinationV1Api(cluster.api)
    now = datetime.datetime.now(datetime.UTC)
    spec = kubernetes.client.V1LeaseSpec(
        holder_identity=identity, lease_duration_seconds=3, acquire_time=now, renew_time=now
    )
    try:
        lease = leases.read_namespaced_lease(LEASE, NAMESPACE)
        lease.spec = spec
        leases.replace_namespaced_lease(LEASE, NAMESPACE, lease)
    except kubernetes.client.ApiException as exc:
        assert exc.status == 404
        body = kubernetes.client.V1Lease(metadata={"name": LEASE}, spec=spec)
        leases.create_namespaced_lease(NAMESPACE, body)


async def test_of_two_operators_only_the_leader_writes_and_each_change_once(cluster, operator):
    leader = await operator(election=election("a"))
    await eventually(lambda: holder(cluster) == "a", what="a holds the Lease")
    waiting = await operator(election=election("b"))
    models = ("one", "two", "three")
    for name in models:
        await cluster.create_model(name, SPEC)
    for name in models:
        await eventually(lambda n=name: cluster.rayservice(n), what=f"{name}'s RayService")
    # Both candidates keep trying (each second): wait until b has had several tries.
    tries = lease_reads(cluster)
    await eventually(lambda: lease_reads(cluster) >= tries + 6, what="six more Lease reads")

    a_metrics, b_metrics = cluster.operator_metrics
    for name in models:
        assert cluster.reconciles(name, by=a_metrics) >= 1
        assert cluster.reconciles(name, by=b_metrics) == 0
    assert holder(cluster) == "a" and leader.running and waiting.running
    assert len(cluster.writes("/rayservices", "POST")) == len(models)
    assert not cluster.writes("/rayservices", "PATCH", "PUT", "DELETE")


async def test_a_leader_that_stops_hands_over_at_once_without_writing_twice(cluster, operator):
    # A long lease, so that taking it when handed back is told apart from taking it on expiry.
    leader = await operator(election=election("a", lease_seconds=20))
    await eventually(lambda: holder(cluster) == "a", what="a holds the Lease")
    waiting = await operator(election=election("b", lease_seconds=20))
    await cluster.create_model("one", SPEC)
    await eventually(lambda: cluster.rayservice("one"), what="one's RayService")

    stopped = time.monotonic()
    await leader.stop()  # a clean stop (SIGTERM, a rolling update) hands the Lease back
    await eventually(lambda: holder(cluster) == "b", what="b holds the Lease")
    # Handed back: b took it at one of its next tries, not after the 20 s lease ran out.
    assert time.monotonic() - stopped < 10
    model_writes = len(cluster.writes("/inferencemodels", "PATCH", "PUT"))  # all of them a's

    await cluster.create_model("two", SPEC)
    _, b_metrics = cluster.operator_metrics
    await eventually(lambda: cluster.reconciles("two", by=b_metrics), what="b reconciles two")
    assert cluster.rayservice("two")
    assert waiting.running
    # b resumed over "one" without writing it again: one POST per RayService, nothing patched,
    # and of the model writes since the handover only "two"'s (its finalizer, status).
    assert len(cluster.writes("/rayservices", "POST")) == 2
    assert not cluster.writes("/rayservices", "PATCH", "PUT", "DELETE")
    later = cluster.writes("/inferencemodels", "PATCH", "PUT")[model_writes:]
    assert later and all("/inferencemodels/two" in str(r.url) for r in later)


async def test_a_lease_left_by_a_dead_leader_is_taken_once_it_expires(cluster, operator):
    await give_lease_to(cluster, "dead")  # held, and nobody will renew it
    taken = time.monotonic()
    await operator(election=election("a"))
    await cluster.create_model("one", SPEC)
    await eventually(lambda: holder(cluster) == "a", timeout=10, what="a takes the Lease")
    waited = time.monotonic() - taken
    await eventually(lambda: cluster.rayservice("one"), what="one's RayService, by a")
    # a counted the lease duration on its own clock from when it first saw the Lease.
    assert waited >= TIMINGS["lease_seconds"]
    assert len(cluster.writes("/rayservices", "POST")) == 1


async def test_a_leader_whose_lease_is_taken_stops_within_its_renew_deadline(cluster, operator):
    leader = await operator(election=election("a"))
    await eventually(lambda: holder(cluster) == "a", what="a holds the Lease")
    await cluster.create_model("one", SPEC)
    await eventually(lambda: cluster.rayservice("one"), what="one's RayService")

    await give_lease_to(cluster, "usurper")
    taken = time.monotonic()
    await eventually(lambda: not leader.running, timeout=10, what="a stops")
    # It notices at its next renew (1 s) and gives up after the renew deadline (2 s).
    assert time.monotonic() - taken < TIMINGS["renew_seconds"] + TIMINGS["retry_seconds"] + 2
    assert isinstance(leader.ended_with, LeadershipLost)
    assert holder(cluster) == "usurper"  # a left the Lease to its new holder, unreleased


async def test_two_candidates_replacing_a_free_lease_at_once_one_is_refused(cluster):
    """Both read the Lease at the same version; the API server takes the first replace and
    refuses the second (409), so the library reports that candidate's try as failed."""
    await give_lease_to(cluster, "dead")

    def race() -> list[bool]:
        locks = [_Lease(election(name), cluster.api, threading.Event()) for name in "ab"]
        for lock in locks:
            found, _ = lock.get(LEASE, NAMESPACE)
            assert found
        now = str(datetime.datetime.now())
        return [
            lock.update(LEASE, NAMESPACE, LeaderElectionRecord(lock.identity, "3", now, now))
            for lock in locks
        ]

    assert await asyncio.to_thread(race) == [True, False]
    assert holder(cluster) == "a"


def _start_cli(
    tmp_path: Path, name: str, health_port: int, metrics_port: int
) -> subprocess.Popen[bytes]:
    """``modelgrid operator --leader-elect`` as a process of its own, as the chart runs it
    (``$KUBECONFIG`` points at kmock); its output goes to ``<name>.log``."""
    command = [
        "operator",
        f"--health-port={health_port}",
        f"--metrics-port={metrics_port}",
        "--leader-elect",
        f"--lease-namespace={NAMESPACE}",
        f"--lease-name={LEASE}",
        "--lease-duration=20",
        "--renew-deadline=10",
        "--retry-period=1",
    ]
    code = "import sys; from modelgrid_cli.main import main; sys.exit(main(sys.argv[1:]))"
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", code, *command], stdout=log, stderr=subprocess.STDOUT
        )


async def _leading(port: int) -> bool | None:
    """What the process's /healthz says of itself; None while it does not answer."""
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).json()["leading"]
    except httpx.TransportError:
        return None


async def _leader_gauge(port: int) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    (line,) = [line for line in text.splitlines() if line.startswith("modelgrid_operator_leader ")]
    return float(line.split()[1])


async def test_the_cli_leads_in_one_process_and_hands_over_when_it_is_stopped(cluster, tmp_path):
    ports, metrics = (free_port(), free_port()), (free_port(), free_port())
    first = _start_cli(tmp_path, "first", ports[0], metrics[0])
    second = None
    try:
        await eventually(lambda: _leading(ports[0]), timeout=30, what="the first process leads")
        second = _start_cli(tmp_path, "second", ports[1], metrics[1])
        # The waiting process answers its liveness probe, and says it does not lead.
        await eventually(
            lambda: _answers_not_leading(ports[1]), timeout=30, what="the second one waits"
        )
        assert (await _leader_gauge(metrics[0]), await _leader_gauge(metrics[1])) == (1.0, 0.0)
        await cluster.create_model("one", SPEC)
        await eventually(lambda: cluster.rayservice("one"), what="one's RayService")

        stopped = time.monotonic()
        first.send_signal(signal.SIGTERM)  # what the kubelet sends a pod being deleted
        assert await asyncio.to_thread(first.wait, 30) == 0
        await eventually(lambda: _leading(ports[1]), timeout=15, what="the second one leads")
        assert time.monotonic() - stopped < 10  # handed back, not expired (20 s)
        assert await _leader_gauge(metrics[1]) == 1.0
        await cluster.create_model("two", SPEC)
        await eventually(lambda: cluster.rayservice("two"), what="two's RayService")
        assert len(cluster.writes("/rayservices", "POST")) == 2
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


async def _answers_not_leading(port: int) -> bool:
    return await _leading(port) is False
