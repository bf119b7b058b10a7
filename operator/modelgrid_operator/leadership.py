"""Leader election: of the operator's replicas, only the holder of a Kubernetes Lease reconciles.

The mechanism is the one client-go's controllers use (kube-controller-manager, KubeRay's
operator), in the official Python client's implementation (``kubernetes.leaderelection`` with
its ``LeaseLock``): a candidate takes the Lease when it is free or when its holder has not
renewed it for ``lease_seconds`` as this candidate's own clock measures it (no clock skew
between nodes enters); the holder renews it every ``retry_seconds`` and stops leading when it
could not renew for ``renew_seconds``. Because ``renew_seconds < lease_seconds``, a holder that
lost the API server has stopped before any other candidate may take over: no object is written
by two operators at once. Replacing the Lease carries its resourceVersion, so two candidates
racing for a free Lease cannot both win.

What this module adds around the library, which is synchronous and runs forever:
- an end: :func:`lead` stops the election thread when the work ends or is cancelled, and hands
  a held Lease back (``holderIdentity`` cleared, as client-go's ``ReleaseOnCancel``) so that a
  rolling update or a drained node moves the leadership within ``retry_seconds``, not
  ``lease_seconds``;
- a timeout on each Lease request (the library sets none: a hung connection would keep a
  holder that can no longer renew from ever noticing), and transport errors turned into the
  failed attempts the library already retries;
- the bridge to asyncio: kopf runs only while this process leads, and losing the Lease cancels
  it at once and raises :class:`LeadershipLost`, so the process exits and starts over as a
  candidate (what controller-runtime does).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

logger = logging.getLogger(__name__)
T = TypeVar("T")

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
"""What the API server takes as an object's name (the Lease's)."""
# The library's jitter factor: renew_seconds must exceed retry_seconds times it.
_JITTER = 1.2


def default_identity() -> str:
    """The pod's name (its hostname) and a random suffix: a restarted container of the same pod
    is a new candidate, so it never mistakes the Lease its previous run held for its own."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Election:
    """Where the Lease lives and how fast it changes hands (client-go's defaults: 15/10/2 s).

    Whole seconds: a Lease stores ``leaseDurationSeconds`` as an integer.
    """

    namespace: str
    name: str = "modelgrid-operator"
    identity: str = field(default_factory=default_identity)
    lease_seconds: int = 15
    renew_seconds: int = 10
    retry_seconds: int = 2

    def __post_init__(self) -> None:
        # The library exits the process (sys.exit) on these; say which value is wrong instead.
        if not self.namespace or not self.name:
            raise ValueError("leader election needs the Lease's namespace and name")
        if not _DNS_SUBDOMAIN.fullmatch(self.name) or len(self.name) > 253:
            raise ValueError(f"Lease name {self.name!r}: not a DNS subdomain (a-z, 0-9, '-', '.')")
        if self.retry_seconds < 1:
            raise ValueError(f"retry period {self.retry_seconds} s: at least 1 s")
        if self.renew_seconds <= _JITTER * self.retry_seconds:
            raise ValueError(
                f"renew deadline {self.renew_seconds} s must exceed {_JITTER} x the retry "
                f"period ({self.retry_seconds} s)"
            )
        if self.lease_seconds <= self.renew_seconds:
            raise ValueError(
                f"lease duration {self.lease_seconds} s must exceed the renew deadline "
                f"({self.renew_seconds} s): a holder must stop before others may take over"
            )

    @property
    def request_timeout(self) -> float:
        """Each Lease request's limit: half the renew deadline, so a holder whose API server
        hangs still gives up within it."""
        return self.renew_seconds / 2


class LeadershipLost(RuntimeError):
    """This process held the Lease and could not keep it: it must stop writing."""


class _Stopped(Exception):
    """Raised inside the election thread to end the library's endless loops."""


class _LeaseRequests:
    """The CoordinationV1Api that ``LeaseLock`` calls, with a timeout on every request, transport
    errors as ``ApiException`` (the library then counts a failed attempt and retries), and a
    stop flag that ends the election thread at its next request."""

    def __init__(
        self, api_client: kubernetes.client.ApiClient, timeout: float, stop: threading.Event
    ) -> None:
        self._api = kubernetes.client.CoordinationV1Api(api_client)
        self._timeout, self._stop = timeout, stop

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._stop.is_set():
            raise _Stopped
        try:
            return method(*args, _request_timeout=self._timeout, **kwargs)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiException(status=0, reason=f"{type(exc).__name__}: {exc}") from exc

    def read_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._api.read_namespaced_lease, *args, **kwargs)

    def create_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._api.create_namespaced_lease, *args, **kwargs)

    def replace_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._api.replace_namespaced_lease, *args, **kwargs)


class _Lease(LeaseLock):  # type: ignore[misc]  # the client ships no type hints
    """The library's LeaseLock on our own requests, and able to hand the Lease back."""

    def __init__(
        self, election: Election, api_client: kubernetes.client.ApiClient, stop: threading.Event
    ) -> None:
        super().__init__(election.name, election.namespace, election.identity)
        self.api_instance = _LeaseRequests(api_client, election.request_timeout, stop)
        self._release_api = kubernetes.client.CoordinationV1Api(api_client)
        self._timeout = election.request_timeout

    def release(self) -> None:
        """Clear the holder if it is still us, so the next candidate takes the Lease at its next
        try. Best effort: a Lease that cannot be released expires on its own."""
        try:
            lease = self._release_api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = datetime.datetime.now(datetime.UTC)
            self._release_api.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=self._timeout
            )
            logger.info("released the Lease %s/%s", self.namespace, self.name)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            logger.warning("could not release the Lease %s/%s: %s", self.namespace, self.name, exc)


class _ElectionThread:
    """The library's election loop in a thread, reporting to the asyncio loop that made it."""

    def __init__(self, election: Election, api_client: kubernetes.client.ApiClient) -> None:
        self._stop = threading.Event()
        self.lease = _Lease(election, api_client, self._stop)
        self.leading = asyncio.Event()
        self.ended = asyncio.Event()
        """The library's loop ended on its own: the Lease was lost (or the election failed)."""
        self._loop = asyncio.get_running_loop()
        config = electionconfig.Config(
            self.lease,
            lease_duration=election.lease_seconds,
            renew_deadline=election.renew_seconds,
            retry_period=election.retry_seconds,
            onstarted_leading=self._started,
            onstopped_leading=self._lost,
        )
        self._election = leaderelection.LeaderElection(config)
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._join_seconds = election.retry_seconds + election.request_timeout + 1

    def _started(self) -> None:
        logger.info("leading: %s holds the Lease", self.lease.identity)
        self._loop.call_soon_threadsafe(self.leading.set)

    def _lost(self) -> None:
        logger.error("lost the Lease: %s stops reconciling", self.lease.identity)

    def _run(self) -> None:
        try:
            self._election.run()
        except _Stopped:
            return
        except Exception:
            logger.exception("the leader election failed")
        self._loop.call_soon_threadsafe(self.ended.set)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        """End the election thread and hand back the Lease if this process held it."""
        self._stop.set()
        await asyncio.to_thread(self._thread.join, self._join_seconds)
        if self.leading.is_set() and not self.ended.is_set():
            await asyncio.to_thread(self.lease.release)


async def lead(
    election: Election,
    api_client: kubernetes.client.ApiClient,
    work: Callable[[], Awaitable[T]],
) -> T:
    """Wait until this process holds the Lease, then run ``work()`` while it does.

    Returns what ``work`` returns; raises :class:`LeadershipLost` (after cancelling ``work``)
    when the Lease is lost. Cancelling this coroutine, or ``work`` ending, hands the Lease back.
    """
    election_thread = _ElectionThread(election, api_client)
    election_thread.start()
    logger.info(
        "candidate %s for the Lease %s/%s", election.identity, election.namespace, election.name
    )
    # Made before ``work`` starts: kopf cancels every task created after it began.
    ended = asyncio.ensure_future(election_thread.ended.wait())
    leading = asyncio.ensure_future(election_thread.leading.wait())
    running: asyncio.Future[T] | None = None
    try:
        await asyncio.wait({leading, ended}, return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            raise LeadershipLost("the leader election ended before this process led")
        running = asyncio.ensure_future(work())
        await asyncio.wait({running, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            raise LeadershipLost(f"{election.identity} lost the Lease {election.name}")
        return running.result()
    finally:
        for task in (leading, ended, running):
            if task is not None and not task.done():
                task.cancel()
        if running is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
        await election_thread.stop()
