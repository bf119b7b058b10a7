"""Where backends come from: the static file, and a Kubernetes watch of InferenceModels.

Both report a full list of :class:`~.routing.ModelEntry` each time anything changes; the gateway
rebuilds its table from the latest list of every source.

The Kubernetes watch runs the official ``kubernetes`` client in a thread. It is already a
dependency, and it loads every kubeconfig and in-cluster credential form (tokens, exec plugins,
client certificates) that a hand-written aiohttp watch would have to re-implement. Watch events
are rare (a status change), so a blocking thread costs nothing on the request path; it hands
results to the event loop with ``call_soon_threadsafe``. The serving package never imports the
operator: InferenceModels are read as plain dicts (:class:`InferenceModelView` names the fields).
"""

from __future__ import annotations

import base64
import calendar
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

from ..claims import claim_of, resolve
from ..protocol.capabilities import (
    ALL_CAPABILITIES,
    ENGINE_CAPABILITIES,
    Capability,
    engine_capabilities,
)
from .config import GatewayConfig, KeyConfig, load_keys
from .routing import Backend, ConditionInfo, ModelEntry, PoolInfo, ResourceStatus

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "modelgrid.io", "v1alpha1", "inferencemodels"
SERVING_PHASES = frozenset({"Ready", "Degraded"})
"""Phases in which the model's endpoint answers (Degraded: some pool is short of replicas)."""
TIMELINE_PHASES = ("pending", "scheduling", "loading")
"""``status.timeToReady`` keys in the order a rollout passes them."""
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def static_entries(config: GatewayConfig, *, created: int) -> list[ModelEntry]:
    """The models of the static file."""
    return [
        ModelEntry(
            name=m.name,
            aliases=tuple(m.aliases),
            backends=tuple(
                Backend(
                    url=b.url,
                    pool=b.pool,
                    upstream_model=b.model,
                    api_key=b.api_key,
                    capabilities=ALL_CAPABILITIES
                    if b.capabilities is None
                    else frozenset(b.capabilities),
                )
                for b in m.backends
            ),
            source="static",
            created=created,
            max_model_len=m.max_model_len,
        )
        for m in config.models
    ]


class PoolStatusView(TypedDict, total=False):
    """``status.pools[]`` of an InferenceModel, the fields the gateway reads."""

    name: str
    accelerator: str
    engine: str
    readyReplicas: int
    desiredReplicas: int
    endpoint: str


class StatusView(TypedDict, total=False):
    """``status`` of an InferenceModel, the fields the gateway reads."""

    phase: str
    endpoint: str
    servedModelNames: list[str]
    readyReplicas: int
    pools: list[PoolStatusView]
    phaseSince: str
    conditions: list[dict[str, Any]]
    timeToReady: dict[str, float | None]


class InferenceModelView(TypedDict, total=False):
    """An InferenceModel as the API server returns it, the fields the gateway reads."""

    metadata: dict[str, Any]
    spec: dict[str, Any]
    status: StatusView


def entry_from_inferencemodel(obj: InferenceModelView) -> ModelEntry:
    """One InferenceModel as a routing entry.

    The served names come from the status (what the operator deployed), else from the spec.
    Each pool with an endpoint is one backend labelled with the pool's name (so the balancer and
    the metrics see pools), ready when the phase serves and that pool has a ready replica; an
    operator that reports no pool endpoints gives one backend, the model's endpoint. A model
    without an endpoint yet is still an entry: it is known, so it answers 503, not 404.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status: StatusView = obj.get("status") or {}
    names = list(status.get("servedModelNames") or [])
    if not names:
        names = [spec.get("servedModelName") or meta.get("name", ""), *spec.get("aliases", [])]
    pools = tuple(
        PoolInfo(
            name=p.get("name", ""),
            accelerator=p.get("accelerator"),
            engine=p.get("engine"),
            ready_replicas=int(p.get("readyReplicas") or 0),
            desired_replicas=int(p.get("desiredReplicas") or 0),
        )
        for p in status.get("pools") or []
    )
    backends = _backends(status, pools, meta.get("namespace"), _capabilities_of(spec))
    max_model_len = (spec.get("engineArgs") or {}).get("maxModelLen")
    return ModelEntry(
        name=names[0],
        aliases=tuple(n for n in names[1:] if n != names[0]),
        backends=backends,
        pools=pools,
        source=f"kubernetes:{meta.get('namespace', '')}/{meta.get('name', '')}",
        created=_created(meta.get("creationTimestamp")),
        statuses=(_resource_status(meta, status),),
        max_model_len=max_model_len if isinstance(max_model_len, int) else None,
    )


def _resource_status(meta: Mapping[str, Any], status: StatusView) -> ResourceStatus:
    """The parts of the status the console shows (phase, conditions, time to ready)."""
    times = status.get("timeToReady") or {}
    total = times.get("total")
    return ResourceStatus(
        resource=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        phase=status.get("phase") or "Pending",
        phase_since=status.get("phaseSince"),
        conditions=tuple(
            ConditionInfo(
                type=str(c.get("type", "")),
                status=str(c.get("status", "Unknown")),
                reason=str(c.get("reason", "")),
                message=str(c.get("message", "")),
            )
            for c in status.get("conditions") or []
        ),
        time_to_ready=tuple((p, float(times.get(p) or 0.0)) for p in TIMELINE_PHASES),
        ready_after_s=float(total) if total is not None else None,
    )


def _capabilities_of(spec: Mapping[str, Any]) -> Callable[[str | None], frozenset[Capability]]:
    """``engine -> what a pool of it serves`` for this spec (its tool-call and reasoning
    parsers), by the serving contract's declaration. An engine the declaration does not know
    (an operator newer than this gateway) is taken to serve everything: its errors answer."""
    tool_calling, reasoning = spec.get("toolCalling"), spec.get("reasoning")
    parsers = {
        "tool_call_parser": (tool_calling.get("parser") or "auto")
        if isinstance(tool_calling, dict)
        else None,
        "reasoning_parser": reasoning.get("parser") if isinstance(reasoning, dict) else None,
    }

    def of(engine: str | None) -> frozenset[Capability]:
        if engine not in ENGINE_CAPABILITIES:
            return ALL_CAPABILITIES
        return engine_capabilities(engine, **parsers)

    return of


def _backends(
    status: StatusView,
    pools: tuple[PoolInfo, ...],
    namespace: str | None,
    capabilities_of: Callable[[str | None], frozenset[Capability]],
) -> tuple[Backend, ...]:
    serving = status.get("phase") in SERVING_PHASES
    per_pool = [
        Backend(
            url=p["endpoint"].rstrip("/") + "/v1",
            pool=p.get("name") or "default",
            ready=serving and int(p.get("readyReplicas") or 0) > 0,
            namespace=namespace,
            capabilities=capabilities_of(p.get("engine")),
        )
        for p in status.get("pools") or []
        if p.get("endpoint")
    ]
    if per_pool:
        return tuple(per_pool)
    endpoint = status.get("endpoint")
    if not endpoint:
        return ()
    ready = serving and int(status.get("readyReplicas") or 0) > 0
    label = "+".join(p.name for p in pools) or "default"
    # one endpoint over every pool: any of them may answer, so only what all of them serve
    shared = ALL_CAPABILITIES.intersection(*(capabilities_of(p.engine) for p in pools))
    return (
        Backend(
            url=endpoint.rstrip("/"),
            pool=label,
            ready=ready,
            namespace=namespace,
            capabilities=shared,
        ),
    )


def entries_from_inferencemodels(
    objs: Iterable[InferenceModelView], *, rivals: Iterable[InferenceModelView] = ()
) -> list[ModelEntry]:
    """Every InferenceModel as an entry under the names it holds, oldest first (so the older
    claim on an alias wins within a namespace).

    A name another namespace owns and does not share (:mod:`modelgrid_serving.claims`) is left
    out of the model's entry at once, whatever its status says: the gateway never waits for the
    operator to report a conflict before it stops routing it. A model that holds none of its
    names is not routed at all.

    Args:
        objs: the InferenceModels to make entries of.
        rivals: more InferenceModels whose claims count (other watched namespaces).
    """
    objs = list(objs)
    lost = resolve([claim_of(o) for o in (*objs, *rivals)])
    entries = []
    for obj in objs:
        entry = entry_from_inferencemodel(obj)
        denied = {n.name: n for n in lost.get(_key(obj), ())}
        for name in sorted(denied):
            logger.warning("%s: %s; not routed", entry.source, denied[name].describe())
        held = [n for n in (entry.name, *entry.aliases) if n not in denied]
        if held:
            entries.append(replace(entry, name=held[0], aliases=tuple(held[1:])))
    return sorted(entries, key=lambda e: (e.created, e.source))


class NamespacedModels:
    """The InferenceModels of every watched namespace, resolved together.

    The gateway watches each namespace it is given as a source of its own, but name claims
    cross namespaces: a change in one namespace (an owner deleted, a share declared) can change
    what another namespace's models hold. Each report therefore returns the entries of every
    source reported so far, each resolved against all of them. Watch threads call it
    concurrently.
    """

    def __init__(self) -> None:
        self._objs: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def report(self, source: str, objs: list[dict[str, Any]]) -> dict[str, list[ModelEntry]]:
        """Store one source's objects; return every reported source's entries."""
        with self._lock:
            self._objs[source] = objs
            snapshot = dict(self._objs)
        return {
            s: entries_from_inferencemodels(
                listed, rivals=[o for other, os in snapshot.items() if other != s for o in os]
            )
            for s, listed in snapshot.items()
        }


def keys_from_secret(secret: Mapping[str, Any], data_key: str) -> list[KeyConfig]:
    """The keys held in a Secret's ``data[data_key]`` (base64 of a keys file)."""
    raw = (secret.get("data") or {}).get(data_key)
    if raw is None:
        return []
    return load_keys(base64.b64decode(raw).decode())


def _created(stamp: object) -> int:
    if not isinstance(stamp, str):
        return 0
    try:
        return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return 0


def current_namespace() -> str:
    """The namespace the gateway runs in (in a pod), else ``default``."""
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class Watcher:
    """List, then watch, one kind of object in a daemon thread; report the full set on changes.

    Args:
        lister: ``(watch_kwargs) -> list response`` as the kubernetes client's list functions.
        on_change: Called in the thread with every object now known (the caller hops threads).
        name: For logs.
        keep: Which objects to keep (watches cannot always filter server-side).
    """

    def __init__(
        self,
        lister: Callable[..., Any],
        on_change: Callable[[list[dict[str, Any]]], None],
        *,
        name: str,
        keep: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> None:
        self._lister, self._on_change, self._keep = lister, on_change, keep
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)
        self.name = name

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _run(self) -> None:
        from kubernetes import watch

        backoff = 0.5
        while not self._stop.is_set():
            try:
                listed = self._lister()
                objs = {_key(o): o for o in listed.get("items", []) if self._keep(o)}
                self._on_change(list(objs.values()))
                version = (listed.get("metadata") or {}).get("resourceVersion")
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self._lister, resource_version=version, timeout_seconds=60
                ):
                    obj, kind = event["object"], event["type"]
                    if kind == "ERROR":
                        break  # typically 410 Gone: list again
                    if not isinstance(obj, dict) or not self._keep(obj):
                        continue
                    if kind == "DELETED":
                        objs.pop(_key(obj), None)
                    else:
                        objs[_key(obj)] = obj
                    self._on_change(list(objs.values()))
                    if self._stop.is_set():
                        return
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - a watch must outlive API-server hiccups
                if self._stop.is_set():
                    return
                logger.warning("watch %s: %s; retrying in %.1fs", self.name, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def api_client() -> Any:
    """A Kubernetes ``ApiClient``: the pod's service account in a cluster, else the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def kubernetes_watchers(
    *,
    namespaces: Mapping[str | None, Callable[[list[dict[str, Any]]], None]],
    secret: tuple[str, str] | None,
    on_secret: Callable[[list[dict[str, Any]]], None],
) -> list[Watcher]:
    """Watchers of InferenceModels (per namespace, or all) and of the keys Secret.

    Args:
        namespaces: For each namespace to watch (``None``: every namespace), what gets that
            namespace's InferenceModels (plain dicts) after each change.
        secret: ``(namespace, name)`` of the keys Secret, or ``None``.
        on_secret: Gets ``[secret]`` or ``[]`` after each change.
    """
    from kubernetes import client

    api = api_client()
    custom = client.CustomObjectsApi(api)

    def lister(namespace: str | None) -> Callable[..., Any]:
        def list_models(**kw: Any) -> Any:
            if namespace:
                return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw)
            return custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw)

        return list_models

    watchers = [
        Watcher(lister(ns), on_models, name=f"inferencemodels:{ns or '*'}")
        for ns, on_models in namespaces.items()
    ]
    if secret is not None:
        core = client.CoreV1Api(api)
        secret_ns, secret_name = secret

        def list_secrets(**kw: Any) -> Any:
            # Raw JSON (no V1Secret models): `data` stays as the API server sends it.
            kw.setdefault("_preload_content", False)
            resp = core.list_namespaced_secret(
                secret_ns, field_selector=f"metadata.name={secret_name}", **kw
            )
            return resp if kw.get("watch") else json.loads(resp.data)

        watchers.append(
            Watcher(
                list_secrets,
                on_secret,
                name="keys-secret",
                keep=lambda o: (o.get("metadata") or {}).get("name") == secret_name,
            )
        )
    return watchers
