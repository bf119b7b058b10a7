"""Operator benchmark: the real kopf operator against kmock, timed and counted at the API.

Measures, in one run:

- **sequential creates**: from an InferenceModel create call returning to its RayService
  written (the emulator finished answering the POST), and to its status at phase Scheduling,
  with the median timeline of one create's calls to show where the time goes;
- **burst**: many models created at once, from the first create call to all RayServices
  written and to all statuses at Scheduling;
- **at scale** (``--scale``, by default 100 and 1,000 settled models, each count on an
  emulated API server of its own): a restarted operator resuming them (writes: must be none; reads; its
  CPU time), the steady state under the default refresh and resync (API reads a second, the
  operator's CPU, and resident memory), and a pod turning Ready to the model's status at
  Ready, for a sample;
- **API calls per reconcile**: writes (POST/PATCH/PUT/DELETE to rayservices, rayclusters and
  inferencemodels, ``/status`` included), Events, and reads (GET/LIST), per model.

Times come from a hook in the emulator (when it finished answering a request), not from
polling. The timed parts run the operator with a refresh interval of an hour, so its refresh
never runs during them. kmock runs in this process, on this event loop, sharing the GIL
with the operator's thread: it has no network, storage, admission or validation, so absolute
figures are a floor for a real API server. CPU is split by thread (:class:`Clock`): the
operator's is its threads' CPU time, without kmock's and the bench's client's. Resident memory
is the process's: the operator's share is what a settled operator adds to the process with kmock
already holding the objects (:func:`at_scale`). Exits 1 when a model never gets its RayService
or status, when a RayService is created twice, or when the steady state or a restart writes.

Run from the repository root (about 200 s on 2 cores)::

    python bench/operator.py
    python bench/operator.py --sequential 20 --burst 30 --scale 100    # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import itertools
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import attrs
import kmock
import kubernetes

# The emulated cluster and the operator thread are the ones the integration tests use.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from emulated_cluster import (
    IM,
    NAMESPACE,
    OperatorThread,
    declare_resources,
    inference_model,
    operator_settings,
    write_kubeconfig,
)
from modelgrid_operator import api
from modelgrid_operator.handlers import OperatorConfig
from modelgrid_operator.k8s import Client
from modelgrid_operator.render.metadata import MODEL_LABEL
from modelgrid_operator.render.rayservice import rayservice_name

SPEC = {
    "model": {"uri": "hf://org/demo-1b"},
    "pools": [{"name": "cpu", "accelerator": "cpu"}],
    "serving": {"maxConcurrentRequests": 8},
}
POOL = SPEC["pools"][0]["name"]
"""The models' one pool: one RayService per model here (one per pool in general)."""
LONG_REFRESH = 3600.0
LONG_WATCH = 3600.0
"""kopf's watch timeouts at scale (see :func:`emulated`)."""
LISTINGS_KEPT = 64
"""How many LISTs the emulator can start a watch from (kopf watches right after it lists)."""
MODELS_PATH = f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{NAMESPACE}/{api.PLURAL}"
WRITES = {kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE}
READS = {kmock.action.FETCH, kmock.action.LIST}
OWN_RESOURCES = {api.PLURAL, "rayservices", "rayclusters"}
TOUCHED = OWN_RESOURCES | {"pods", "events"}  # what a reconcile reads or writes


class BenchFailed(RuntimeError):
    """The operator did not do what the bench waited for, or did what it must not."""


# -- the emulator, timed ----------------------------------------------------------------------


@dataclass
class Answer:
    """One request the emulator served: when it arrived and when it was answered."""

    request: kmock.Request
    start: float
    end: float | None = None


@attrs.define(eq=False)
class TimedEmulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator that notes when it answers each request, and answers a
    create with 201 Created as the API server does.

    kmock 0.8 answers creates with 200, for which the Kubernetes client's custom-object
    ``create`` returns None instead of the object (it maps only 201 to a body).

    kmock 0.8 also picks the reaction to a request by scanning every request recorded so far
    (``request in view``), so each answer costs more than the last: after a few thousand
    requests, tens of milliseconds. This emulator keeps only the requests still being answered
    (the watches) in kmock's log, so an answer costs the same throughout the run; the full
    log, with times, is :attr:`answers`.

    And kmock 0.8 ignores label selectors: a LIST of the RayServices labelled with one model
    would carry every model's. This emulator drops the items the selector does not match
    (:func:`select`), so the operator decodes what a real API server would send it.

    And kmock 0.8 finds the object of a GET, POST, PATCH or DELETE by comparing the request
    with every stored object, of every kind, so each call costs more as the store grows and
    settling N models costs N squared: at 5,000 models (some 10,000 objects), tens of
    milliseconds a call. This emulator looks the object up by its key instead (:meth:`_stored`).

    And kmock 0.8 answers every LIST with the resourceVersion ``...`` and starts every watch by
    replaying each stored object as ADDED, so an operator that lists then watches (as kopf
    does) sees every object twice when it starts, and handles each child's ADDED as a change.
    This emulator answers a LIST with a resourceVersion of its own, and a watch from it with the
    events since that LIST and nothing before, as an API server does.
    """

    answers: list[Answer] = attrs.field(factory=list, init=False)
    answered: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    listeners: list[Callable[[Answer], None]] = attrs.field(factory=list, init=False)
    _open: set[int] = attrs.field(factory=set, init=False)
    _listed: dict[str, Any] = attrs.field(factory=dict, init=False)
    """resourceVersion of a LIST -> the event bus's mark at the LIST (the latest few)."""
    _versions: Iterator[int] = attrs.field(factory=itertools.count, init=False)

    async def _handle(self, request: kmock.Request) -> Any:
        answer = Answer(request, time.perf_counter())
        self.answers.append(answer)
        self._open.add(id(request))
        self._requests[:] = [r for r in self._requests if id(r) in self._open]
        try:
            response = await super()._handle(request)
            if (
                request.action == kmock.action.CREATE
                and response.status == 200
                and not response.prepared
            ):
                response.set_status(201)
            if request.action == kmock.action.LIST and request.params.get("labelSelector"):
                select(response, request.params["labelSelector"])
            return response
        finally:
            answer.end = time.perf_counter()
            self._open.discard(id(request))
            for listener in self.listeners:
                listener(answer)
            self.answered.set()

    def _stored(self, request: kmock.Request) -> Any:
        """The stored object a request names (a create names it in its body), or None."""
        data = request.data if isinstance(request.data, dict) else {}
        metadata = data.get("metadata") or {}
        key = (
            request.resource,
            request.namespace or metadata.get("namespace"),
            request.name or metadata.get("name"),
        )
        try:
            return self.objects[key]  # kmock's ObjectsArray has no get()
        except KeyError:
            return None

    async def _serve_list(self, request: kmock.Request) -> Any:
        bus = self._buses[request.resource]
        mark = await bus.mark()  # an event between this and the listing comes twice: harmless
        listing = await super()._serve_list(request)
        version = f"bench-{next(self._versions)}"
        self._listed[version] = mark
        if len(self._listed) > LISTINGS_KEPT:  # LISTs no watch follows (the operator's reads)
            oldest = self._listed.pop(next(iter(self._listed)))
            await oldest.bus.unmark(oldest)
        listing["metadata"] = {"resourceVersion": version}
        return listing

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        mark = self._listed.pop(request.params.get("resourceVersion", ""), None)
        if mark is None:  # not from a LIST of ours: kmock replays everything
            async for payload in super()._serve_watch(request):
                yield payload
            return
        yield b""  # kmock's way to send the headers of a stream
        try:
            async for event in mark:
                if request.namespace in (None, event["object"]["metadata"].get("namespace")):
                    yield event
        finally:
            await mark.bus.unmark(mark)

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        async with self._lock:
            stored = self._stored(request)
        if stored is None or stored.deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return stored.raw

    async def _serve_create(self, request: kmock.Request) -> Any:
        # kmock's _handle stored the object before this; only the answer is left.
        async with self._lock:
            return self._stored(request).raw

    async def _serve_update(self, request: kmock.Request) -> Any:
        async with self._lock:
            return self._stored(request).last.raw

    _serve_delete = _serve_update


def select(response: Any, selector: str) -> None:
    """Keep the items of a LIST answer that carry every ``key=value`` of ``selector``, as the
    API server does: kmock 0.8 ignores label selectors and answers with every object."""
    wanted = dict(term.split("=", 1) for term in selector.split(","))
    if not isinstance(getattr(response, "body", None), bytes) or response.prepared:
        return
    listing = json.loads(response.body)
    listing["items"] = [
        item
        for item in listing.get("items") or []
        if wanted.items() <= ((item.get("metadata") or {}).get("labels") or {}).items()
    ]
    response.body = json.dumps(listing).encode()


def is_operator(answer: Answer) -> bool:
    """Sent by the operator (kopf or the Kubernetes client), not by the bench's own client."""
    return not str(answer.request.headers.get("User-Agent", "")).startswith("kmock/")


def is_machinery(request: kmock.Request) -> bool:
    """kopf's own reads: API discovery and its list+watch of all InferenceModels."""
    return (
        request.action == kmock.action.WATCH
        or plural(request) not in TOUCHED
        or (request.action == kmock.action.LIST and plural(request) == api.PLURAL)
    )


def plural(request: kmock.Request) -> str:
    return request.resource.plural if request.resource else ""


def call_name(request: kmock.Request) -> str:
    """``VERB resource[/subresource]``, e.g. ``PATCH inferencemodels/status``."""
    verb = {
        kmock.action.FETCH: "GET",
        kmock.action.LIST: "LIST",
        kmock.action.WATCH: "WATCH",
        kmock.action.CREATE: "POST",
        kmock.action.DELETE: "DELETE",
    }.get(request.action, str(request.method.value))
    resource = plural(request) or str(request.url.path)
    return f"{verb} {resource}" + (f"/{request.subresource}" if request.subresource else "")


def subject(request: kmock.Request) -> str | None:
    """The object a request is about (the model, its RayService, an Event's object)."""
    if request.name:
        return request.name
    data = request.data if isinstance(request.data, dict) else {}
    if request.action == kmock.action.CREATE:
        return (data.get("involvedObject") or data.get("metadata") or {}).get("name")
    selector = request.params.get("labelSelector", "")
    prefix = f"{MODEL_LABEL}="
    return selector[len(prefix) :] if selector.startswith(prefix) else None


@dataclass(frozen=True)
class CallCounts:
    """The operator's API calls in a window, by kind."""

    writes: int
    events: int
    reads: int
    by_call: Counter[str]

    @classmethod
    def of(cls, answers: Iterable[Answer]) -> CallCounts:
        own = [a.request for a in answers if is_operator(a) and not is_machinery(a.request)]
        return cls(
            writes=sum(r.action in WRITES and plural(r) in OWN_RESOURCES for r in own),
            events=sum(r.action in WRITES and plural(r) == "events" for r in own),
            reads=sum(r.action in READS for r in own),
            by_call=Counter(call_name(r) for r in own),
        )


def describe_writes(answers: Iterable[Answer]) -> str:
    """The operator's writes, one a line, with their bodies (for a failure message)."""
    return "".join(
        f"\n  {call_name(a.request)} {subject(a.request)}: {json.dumps(a.request.data)[:400]}"
        for a in answers
        if is_operator(a) and a.request.action in WRITES
    )


@dataclass
class Milestones:
    """When each model first got its RayService, and each status phase.

    Fed by the emulator as it answers, so waiting on a hundred models costs nothing.
    """

    rayservice: dict[str, float] = field(default_factory=dict)
    phase: dict[tuple[str, str], float] = field(default_factory=dict)

    def note(self, answer: Answer) -> None:
        r, end = answer.request, answer.end or answer.start
        if r.action == kmock.action.CREATE and plural(r) == "rayservices":
            self.rayservice.setdefault(subject(r) or "", end)
        elif r.action == kmock.action.UPDATE and plural(r) == api.PLURAL and r.name:
            phase = (r.data.get("status") or {}).get("phase") if isinstance(r.data, dict) else None
            if phase:
                self.phase.setdefault((r.name, phase), end)

    def written(self, name: str) -> float | None:
        return self.rayservice.get(rayservice_name(name, POOL))

    def scheduled(self, name: str) -> float | None:
        return self.phase.get((name, api.Phase.SCHEDULING.value))


# -- waiting on the emulator ------------------------------------------------------------------


async def wait_until(
    emulator: TimedEmulator, check: Callable[[], Any], *, timeout: float, what: str
) -> Any:
    """Re-check ``check`` whenever the emulator answers a request; fail after ``timeout``."""
    deadline = time.perf_counter() + timeout
    while True:
        emulator.answered.clear()
        if result := check():
            return result
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise BenchFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        try:
            await asyncio.wait_for(emulator.answered.wait(), min(remaining, 0.05))
        except TimeoutError:
            pass


async def settle(
    emulator: TimedEmulator,
    *,
    quiet: float,
    timeout: float = 30.0,
    counts: Callable[[kmock.Request], bool] = lambda _: True,
) -> None:
    """Wait until the operator has answered no call that ``counts`` (watches never count)
    for ``quiet`` seconds and has none in flight."""
    last = time.perf_counter()

    def counted(answer: Answer) -> bool:
        return (
            is_operator(answer)
            and answer.request.action != kmock.action.WATCH
            and counts(answer.request)
        )

    def note(answer: Answer) -> None:
        nonlocal last
        if counted(answer):
            last = answer.end or last

    emulator.listeners.append(note)
    try:
        deadline = last + timeout
        while time.perf_counter() - last < quiet or any(
            a.end is None and counted(a) for a in emulator.answers[-50:]
        ):
            if time.perf_counter() > deadline:
                raise BenchFailed(f"the operator was still busy after {timeout:.0f}s")
            await asyncio.sleep(0.01)
    finally:
        emulator.listeners.remove(note)


async def wait_for_watch(emulator: TimedEmulator, timeout: float = 30) -> None:
    """Wait until kopf watches InferenceModels."""
    since = len(emulator.answers)
    await wait_until(
        emulator,
        lambda: any(
            a.request.action == kmock.action.WATCH and plural(a.request) == api.PLURAL
            for a in emulator.answers[since:]
        ),
        timeout=timeout,
        what="the operator's watch",
    )


def is_watch(answer: Answer) -> bool:
    return is_operator(answer) and answer.request.action == kmock.action.WATCH


async def operator_idle(
    emulator: TimedEmulator, kinds: set[str], since: int, *, timeout: float
) -> None:
    """Wait until the operator watches each of ``kinds`` (in the answers from ``since`` on)
    and its threads used under a tenth of a core for a second.

    kopf hands a listing's objects to its workers before it opens the watch, and they handle
    them after, with no API call to show it: a quiet API alone does not say it has resumed.
    """
    deadline = time.perf_counter() + timeout
    while True:
        before = Clock.now()
        await asyncio.sleep(1.0)
        used = Clock.now().since(before)
        watching = {plural(a.request) for a in emulator.answers[since:] if is_watch(a)}
        if kinds <= watching and used.operator < 0.1 * used.wall:
            return
        if time.perf_counter() > deadline:
            raise BenchFailed(
                f"the operator was still busy after {timeout:.0f}s (watching {sorted(watching)}"
                f" of {sorted(kinds)}, {used.operator / used.wall:.0%} of a core)"
            )


async def create_model(emulator: TimedEmulator, name: str) -> float:
    """Create an InferenceModel over HTTP; returns when the call returned."""
    async with emulator.post(MODELS_PATH, json=inference_model(name, SPEC)) as response:
        response.raise_for_status()
        await response.read()
    return time.perf_counter()


def handled(emulator: TimedEmulator, name: str) -> bool:
    """kopf has stored the spec as handled, and the status is at Scheduling."""
    stored = emulator.objects[IM, NAMESPACE, name].raw
    annotations = stored.get("metadata", {}).get("annotations") or {}
    return (
        f"{api.GROUP}/last-handled-configuration" in annotations
        and (stored.get("status") or {}).get("phase") == api.Phase.SCHEDULING.value
    )


def all_handled(emulator: TimedEmulator, names: Sequence[str]) -> Callable[[], bool]:
    """A check that every one of ``names`` is :func:`handled`, in time linear in the names over
    all its calls (it is called on every answer): a model once handled stays so, and the check
    stops at the first one not yet handled."""
    pending = deque(names)

    def check() -> bool:
        while pending and handled(emulator, pending[0]):
            pending.popleft()
        return not pending

    return check


def check_one_rayservice_each(emulator: TimedEmulator, names: Sequence[str]) -> None:
    posts = Counter(
        subject(a.request)
        for a in emulator.answers
        if a.request.action == kmock.action.CREATE and plural(a.request) == "rayservices"
    )
    wrong = {
        n: posts[rayservice_name(n, POOL)] for n in names if posts[rayservice_name(n, POOL)] != 1
    }
    if wrong:
        raise BenchFailed(f"RayService POSTs per model should be 1: {wrong}")


# -- the measurements -------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    what: str
    value: str
    note: str = ""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: p99 of 100 samples is the second largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def per_model_rows(label: str, counts: CallCounts, models: int) -> list[Row]:
    calls = ", ".join(f"{name} {n / models:.2g}" for name, n in sorted(counts.by_call.items()))
    return [
        Row(
            f"{label}: writes per model",
            f"{counts.writes / models:.2f}",
            "POST/PATCH/PUT/DELETE to rayservices, rayclusters and inferencemodels (+/status)",
        ),
        Row(f"{label}: Events per model", f"{counts.events / models:.2f}", "POST events"),
        Row(
            f"{label}: reads per model",
            f"{counts.reads / models:.2f}",
            "GET/LIST, without kopf's discovery and list+watch of all InferenceModels",
        ),
        Row(f"{label}: calls per model", calls, ""),
    ]


EMULATOR_THREADS = "emulator"
"""The name prefix of the bench loop's executor threads: with the main thread, the emulator's
side of the process (kmock's server and the bench's own client calls run on the main loop)."""


@dataclass(frozen=True)
class Clock:
    """Wall and CPU seconds, the CPU split between the emulator's side and the operator's.

    kmock and the operator share this process (and its GIL), each on an event loop of its own:
    the emulator's side is the main thread and its loop's executor (:data:`EMULATOR_THREADS`),
    read from their thread CPU clocks; the operator's is the rest of the process's CPU time: its
    loop thread, kopf's executor and its loop's executor, threads that ended included. A
    garbage collection runs in whichever thread triggers it, so some of one side's may show in
    the other's.
    """

    wall: float
    process: float
    emulator: float

    @classmethod
    def now(cls) -> Clock:
        main = threading.main_thread()
        emulator = sum(
            time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            for thread in threading.enumerate()
            if thread.ident is not None
            and (thread is main or thread.name.startswith(EMULATOR_THREADS))
        )
        return cls(time.perf_counter(), time.process_time(), emulator)

    def since(self, start: Clock) -> Clock:
        return Clock(
            self.wall - start.wall, self.process - start.process, self.emulator - start.emulator
        )

    @property
    def operator(self) -> float:
        return self.process - self.emulator

    def shares(self) -> str:
        """The CPU split, in percent of one core over the wall time."""
        return (
            f"process {self.process / self.wall:.1%}, of which the emulator's side "
            f"{self.emulator / self.wall:.1%}"
        )


def rss_mib() -> float:
    """This process's resident memory after a full garbage collection, with the C heap's free
    pages handed back (glibc), so that what is left is what the objects alive hold."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib / 1024


async def create_models(emulator: TimedEmulator, names: Sequence[str], chunk: int = 200) -> None:
    """Create the models over HTTP, ``chunk`` at a time."""
    for i in range(0, len(names), chunk):
        await asyncio.gather(*(create_model(emulator, n) for n in names[i : i + chunk]))


async def serve(emulator: TimedEmulator, name: str, cluster: str) -> None:
    """Play KubeRay for one model: its RayService's application runs on ``cluster``."""
    rs = rayservice_name(name, POOL)
    path = f"/apis/ray.io/v1/namespaces/{NAMESPACE}/rayservices/{rs}"
    status = {
        "activeServiceStatus": {
            "rayClusterName": cluster,
            "applicationStatuses": {f"{name}-{POOL}": {"status": "RUNNING"}},
        }
    }
    async with emulator.patch(
        path,
        json={"status": status},
        headers={"Content-Type": "application/merge-patch+json"},
    ) as response:
        response.raise_for_status()


async def ready_pod(emulator: TimedEmulator, name: str, cluster: str) -> float:
    """Create a Ready worker pod of the model's cluster; returns when the call returned."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{cluster}-{POOL}-0",
            "namespace": NAMESPACE,
            "uid": f"uid-pod-{name}",
            "labels": {MODEL_LABEL: name, "modelgrid.io/pool": POOL, "ray.io/cluster": cluster},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    async with emulator.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=pod) as response:
        response.raise_for_status()
    return time.perf_counter()


async def at_scale(
    emulator: TimedEmulator,
    milestones: Milestones,
    start: Callable[..., OperatorThread],
    count: int,
    args: argparse.Namespace,
) -> list[Row]:
    """``count`` settled models: resuming them, the steady state, and pod Ready -> status."""
    names = [f"m{count}-{i}" for i in range(count)]
    operator = start(LONG_REFRESH, LONG_REFRESH)
    try:
        await wait_for_watch(emulator, timeout=60 + count / 10)
        await create_models(emulator, names)
        await wait_until(
            emulator,
            lambda: all(milestones.scheduled(n) for n in names),
            timeout=30 + count / 5,
            what=f"{count} models at Scheduling",
        )
        # kopf stores a model as handled (its annotation) after the handler set the status; an
        # operator stopped before that handles the model again on resume, and writes.
        await wait_until(
            emulator,
            all_handled(emulator, names),
            timeout=30 + count / 5,
            what=f"{count} models stored as handled",
        )
        await settle(emulator, quiet=0.5, timeout=60 + count / 10)
    finally:
        await operator.stop()

    # A restarted operator resumes them: from its first listing, nothing to write or read.
    kinds = {plural(a.request) for a in emulator.answers if is_watch(a)}
    rss_before = rss_mib()  # kmock holding the models and their RayServices, no operator
    first, clock = len(emulator.answers), Clock.now()
    operator = start(args.scale_refresh, args.scale_resync)
    resuming = 60 + count / 1000 * 60
    try:
        await wait_for_watch(emulator, timeout=resuming)
        await settle(emulator, quiet=1.0, timeout=resuming)
        await operator_idle(emulator, kinds, first, timeout=resuming)
        resumed = Clock.now().since(clock)
        resume = CallCounts.of(emulator.answers[first:])
        if resume.writes + resume.events:
            raise BenchFailed(f"resuming wrote: {describe_writes(emulator.answers[first:])}")

        # Steady state: nothing happens for a while but the refresh and the resync.
        first, clock = len(emulator.answers), Clock.now()
        await asyncio.sleep(args.scale_window)
        steady_clock = Clock.now().since(clock)
        window = emulator.answers[first:]
        steady = CallCounts.of(window)
        if steady.writes + steady.events:
            raise BenchFailed(f"the steady state wrote: {describe_writes(window)}")
        watches = sum(is_watch(a) for a in window)
        rss = rss_mib()

        # A pod turning Ready -> the model's status at Ready, for a sample of the models.
        sample = names[:: max(1, count // args.scale_pods)][: args.scale_pods]
        for name in sample:
            await serve(emulator, name, f"{name}-c1")
        await settle(emulator, quiet=0.3, timeout=60)
        delays = []
        for name in sample:
            created = await ready_pod(emulator, name, f"{name}-c1")
            done = await wait_until(
                emulator,
                lambda n=name: milestones.phase.get((n, api.Phase.READY.value)),
                timeout=10,
                what=f"{name} at Ready",
            )
            delays.append(done - created)
    finally:
        await operator.stop()
    took = steady_clock.wall
    reads_per_s = steady.reads / took
    return [
        Row(
            f"{count} models: resume, writes",
            str(resume.writes + resume.events),
            f"{resumed.wall:.1f} s from start to idle; operator CPU {resumed.operator:.1f} s, "
            f"the emulator's side {resumed.emulator:.1f} s",
        ),
        Row(
            f"{count} models: resume, reads",
            str(resume.reads),
            "GET/LIST besides kopf's list+watch of each kind",
        ),
        Row(
            f"{count} models: steady state, API reads/s",
            f"{reads_per_s:.3f}",
            f"{reads_per_s / count:.5f} a model; over {took:.0f} s, refresh {args.scale_refresh:g} s"
            f", resync {args.scale_resync:g} s ({steady.reads} reads)",
        ),
        Row(
            f"{count} models: steady state, operator CPU",
            f"{steady_clock.operator / took:.1%}",
            f"of one core, the operator's threads; {steady_clock.shares()}; "
            f"{watches} watch requests in the window",
        ),
        Row(
            f"{count} models: resident memory, the operator's share",
            f"{rss - rss_before:+.0f} MiB",
            "this process settled, less the same with kmock holding the objects before the "
            f"operator started ({rss_before:.0f} MiB)",
        ),
        Row(f"{count} models: resident memory, this process", f"{rss:.0f} MiB", ""),
        Row(
            f"{count} models: pod Ready -> status Ready, p50 / p99",
            f"{ms(percentile(delays, 50))} / {ms(percentile(delays, 99))}",
            f"{len(delays)} models, one after another; max {ms(max(delays))}",
        ),
    ]


async def sequential(
    emulator: TimedEmulator, milestones: Milestones, count: int, warmup: int
) -> list[Row]:
    """Create models one at a time; time each to its RayService and to Scheduling."""
    to_rayservice, to_scheduling, in_emulator = [], [], []
    timelines: list[tuple[tuple[str, ...], list[float]]] = []
    names = [f"seq-{i}" for i in range(warmup + count)]
    first = len(emulator.answers)
    for index, name in enumerate(names):
        since = len(emulator.answers)
        created = await create_model(emulator, name)
        written = await wait_until(
            emulator, lambda n=name: milestones.written(n), timeout=10, what=f"RayService {name}"
        )
        scheduled = await wait_until(
            emulator,
            lambda n=name: milestones.scheduled(n),
            timeout=10,
            what=f"{name} at Scheduling",
        )
        await settle(emulator, quiet=0.05)
        if index < warmup:
            first = len(emulator.answers)
            continue
        to_rayservice.append(written - created)
        to_scheduling.append(scheduled - created)
        mine = calls_about(emulator.answers[since:], name)
        in_emulator.append(sum((a.end or a.start) - a.start for a in mine))
        timelines.append(timeline([a for a in mine if plural(a.request) != "events"], created))
    check_one_rayservice_each(emulator, names)
    return [
        Row(
            "create -> RayService written, p50",
            ms(percentile(to_rayservice, 50)),
            f"{count} sequential creates after {warmup} untimed",
        ),
        Row(
            "create -> RayService written, p99",
            ms(percentile(to_rayservice, 99)),
            f"max {ms(max(to_rayservice))}",
        ),
        Row("create -> status at Scheduling, p50", ms(percentile(to_scheduling, 50)), ""),
        Row(
            "create -> status at Scheduling, p99",
            ms(percentile(to_scheduling, 99)),
            f"max {ms(max(to_scheduling))}",
        ),
        Row(
            "  of which the emulator answering, p50",
            ms(statistics.median(in_emulator)),
            "its answer times (wall) for the model's calls summed, Events included",
        ),
        *timeline_rows(timelines),
        *per_model_rows("sequential", CallCounts.of(emulator.answers[first:]), count),
    ]


def calls_about(answers: Iterable[Answer], name: str) -> list[Answer]:
    """The operator's calls about one model or its RayService, Events included."""
    return [
        a
        for a in answers
        if is_operator(a) and subject(a.request) in {name, rayservice_name(name, POOL)}
    ]


def timeline(answers: Sequence[Answer], created: float) -> tuple[tuple[str, ...], list[float]]:
    """The calls about one model, in order (repeats numbered), and when each was answered."""
    seen: Counter[str] = Counter()
    labels, ends = [], []
    for answer in answers:
        name = call_name(answer.request)
        seen[name] += 1
        labels.append(f"{name} #{seen[name]}" if seen[name] > 1 else name)
        ends.append((answer.end or answer.start) - created)
    return tuple(labels), ends


def timeline_rows(timelines: Sequence[tuple[tuple[str, ...], list[float]]]) -> list[Row]:
    """The median time at which each call of the most common sequence was answered."""
    common, n = Counter(labels for labels, _ in timelines).most_common(1)[0]
    ends = [e for labels, e in timelines if labels == common]
    return [
        Row(
            f"  {i + 1}. {label} answered",
            ms(statistics.median(e[i] for e in ends)),
            f"median, after the create returned ({n}/{len(timelines)} creates made "
            f"these calls in this order; Events left out)"
            if i == 0
            else "",
        )
        for i, label in enumerate(common)
    ]


async def burst(emulator: TimedEmulator, milestones: Milestones, count: int) -> list[Row]:
    """Create ``count`` models at once; time them to all RayServices and all Scheduling."""
    names = [f"burst-{i}" for i in range(count)]
    first, clock = len(emulator.answers), Clock.now()
    started = clock.wall
    returned = max(await asyncio.gather(*(create_model(emulator, n) for n in names)))
    await wait_until(
        emulator,
        lambda: all(milestones.written(n) for n in names),
        timeout=60,
        what=f"{count} RayServices",
    )
    await wait_until(
        emulator,
        lambda: all(milestones.scheduled(n) for n in names),
        timeout=60,
        what=f"{count} models at Scheduling",
    )
    done, cpu = max(milestones.scheduled(n) or 0 for n in names), Clock.now().since(clock)
    await settle(emulator, quiet=0.15)
    check_one_rayservice_each(emulator, names)
    window = emulator.answers[first:]
    written = [milestones.written(n) or 0 for n in names]
    return [
        Row(
            f"burst of {count}: create calls returned",
            ms(returned - started),
            "all sent at once by the bench",
        ),
        Row(
            f"burst of {count}: first create -> all RayServices written",
            ms(max(written) - started),
            f"the first after {ms(min(written) - started)}",
        ),
        Row(
            f"burst of {count}: first create -> all at Scheduling",
            ms(done - started),
            f"{count / (done - started):.0f} models/s; operator CPU {cpu.operator:.1f} s "
            f"({cpu.operator / count * 1000:.0f} ms a model), the emulator's side "
            f"{cpu.emulator:.1f} s; the emulator's answer times (wall) sum to "
            f"{answering(window):.1f} s",
        ),
        *wave_rows(window, names, started),
        *per_model_rows(f"burst of {count}", CallCounts.of(window), count),
    ]


def answering(answers: Iterable[Answer]) -> float:
    """Seconds the emulator spent answering (watches left out: they never end)."""
    return sum(
        a.end - a.start
        for a in answers
        if a.end is not None and a.request.action != kmock.action.WATCH
    )


def wave_rows(window: Sequence[Answer], names: Sequence[str], started: float) -> list[Row]:
    """For each call of the usual sequence, when the first and the last model made it."""
    timelines = [
        timeline([a for a in calls_about(window, n) if plural(a.request) != "events"], started)
        for n in names
    ]
    common, n = Counter(labels for labels, _ in timelines).most_common(1)[0]
    ends = [e for labels, e in timelines if labels == common]
    return [
        Row(
            f"  {i + 1}. {label}: first / last answered",
            f"{ms(min(e[i] for e in ends))} / {ms(max(e[i] for e in ends))}",
            f"after the first create ({n}/{len(names)} models made these calls in this "
            f"order; Events left out)"
            if i == 0
            else "",
        )
        for i, label in enumerate(common)
    ]


# -- running it -------------------------------------------------------------------------------


def machine() -> str:
    versions = ", ".join(f"{p} {version(p)}" for p in ("kopf", "kmock", "kubernetes", "aiohttp"))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load} at the end, "
        f"Python {platform.python_version()}, {versions}"
    )


def print_rows(rows: Sequence[Row]) -> None:
    for row in rows:
        print(f"| {row.what} | {row.value} | {row.note} |", flush=True)


@contextlib.asynccontextmanager
async def emulated(
    tmp: Path,
) -> AsyncIterator[tuple[TimedEmulator, Milestones, Callable[..., OperatorThread]]]:
    """A fresh emulated API server, its milestones, and a function that starts an operator on
    it: ``start(refresh, resync, long_watches=False)``.

    ``long_watches`` keeps kopf's watches open for an hour. kmock sends no bookmarks (and
    ignores ``timeoutSeconds``), so kopf reconnects a watch that brought no event for 70 s (its
    inactivity timeout), which at scale happens to some while others are busy; it resumes from
    the last object's resourceVersion, which kmock does not know, so the new watch replays every
    stored object as ADDED. A real API server sends bookmarks and resumes the watch: the
    replays would be the bench's cost, not the operator's.
    """
    milestones = Milestones()
    async with TimedEmulator() as emulator, kmock.Server(emulator) as server:
        emulator.listeners.append(milestones.note)
        declare_resources(emulator)
        kubeconfig = write_kubeconfig(tmp / "kubeconfig", str(server.url))
        os.environ["KUBECONFIG"] = str(kubeconfig)  # kopf's login reads it
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=configuration
        )

        def start(
            refresh: float, resync: float = LONG_REFRESH, long_watches: bool = False
        ) -> OperatorThread:
            config = OperatorConfig(
                refresh_interval=refresh,
                resync_interval=resync,
                client_factory=lambda: Client(kubernetes.client.ApiClient(configuration)),
            )
            settings = operator_settings(events=True)
            if long_watches:
                settings.watching.server_timeout = LONG_WATCH
                settings.watching.inactivity_timeout = LONG_WATCH
            return OperatorThread(config, settings).start()

        yield emulator, milestones, start


async def run(args: argparse.Namespace) -> None:
    """Run each part and print its rows when it ends, so a part that fails leaves the others'."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(thread_name_prefix=EMULATOR_THREADS)
    )
    with tempfile.TemporaryDirectory(prefix="modelgrid-bench-") as tmp:
        async with emulated(Path(tmp)) as (emulator, milestones, start):
            operator = start(LONG_REFRESH)
            try:
                await wait_for_watch(emulator)
                print_rows(await sequential(emulator, milestones, args.sequential, args.warmup))
                print_rows(await burst(emulator, milestones, args.burst))
            finally:
                await operator.stop()
        for count in args.scale:
            async with emulated(Path(tmp)) as (emulator, milestones, start):
                print_rows(
                    await at_scale(
                        emulator, milestones, partial(start, long_watches=True), count, args
                    )
                )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=100, help="timed creates (100)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed creates first (3)")
    parser.add_argument("--burst", type=int, default=100, help="models created at once (100)")
    parser.add_argument(
        "--scale",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[100, 1000],
        help="settled models, comma-separated (100,1000)",
    )
    parser.add_argument("--scale-refresh", type=float, default=60.0, help="seconds (60)")
    parser.add_argument("--scale-resync", type=float, default=3600.0, help="seconds (3600)")
    parser.add_argument("--scale-window", type=float, default=30.0, help="seconds (30)")
    parser.add_argument("--scale-pods", type=int, default=30, help="pods made Ready (30)")
    args = parser.parse_args(argv)
    # kmock refuses every Event after the first (it cannot honour generateName) and kopf warns
    # about each; errors still show.
    logging.basicConfig(level=logging.ERROR)
    started, cpu = time.perf_counter(), time.process_time()
    print("| measurement | value | note |\n|---|---|---|", flush=True)
    try:
        asyncio.run(run(args))
    except BenchFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        print(f"\nMachine: {machine()}")
        print(
            f"Bench took {time.perf_counter() - started:.1f} s wall, "
            f"{time.process_time() - cpu:.1f} s CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
