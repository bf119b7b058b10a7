"""What the operator keeps of the cluster in memory, and the client that reads from it.

kopf already lists and watches everything the operator watches; its indexes keep, per object,
what an indexing function returns. The functions here index each kind a reconcile reads (models,
their RayServices, the RayClusters of those, their pods and NetworkPolicies, and the nodes the
memory admission reads), so that a reconcile started by a child's event reads nothing from the
API server. kopf fills every index from its initial listing before it runs any handler, so a
restarted operator resumes its models from memory too.

The memory lags the API server by the watch: an object the operator just wrote may not be
indexed yet when the next reconcile of its model runs. So :class:`WatchedClient` reads back what
it wrote (the API server's answer) until the index holds a newer version of that object than it
held at the write; and the model's status, which only the operator writes, is the one it last
wrote (:attr:`WatchedClient.statuses`). Two reconciles then never create one RayService twice
nor compute one phase transition twice. What is left is another writer's change that is not
indexed yet: the reconcile works from the version before, and the change's own event starts the
reconcile that sees it.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modelgrid_operator import api
from modelgrid_operator.k8s import Client
from modelgrid_operator.render.metadata import MODEL_LABEL

Body = dict[str, Any]
"""An object as the API server sends it."""
Key = tuple[str, str]
"""(namespace, name) of an object, or (namespace, model name) for the pods of a model."""
Indexed = Mapping[Any, Iterable[Body]]
"""A kopf index (key -> the values of every object with that key), or a dict like one."""
NODES = "nodes"
"""The one key of the node index."""
T = TypeVar("T")


def slim(body: Mapping[str, Any]) -> Body:
    """The object without ``managedFields`` (the bulk of most objects, never read here)."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {**body, "metadata": meta}


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")


def by_name(body: Mapping[str, Any]) -> dict[Key, Body]:
    """Index an object under (namespace, name)."""
    return {key_of(body): slim(body)}


def by_model(body: Mapping[str, Any]) -> dict[Key, Body]:
    """Index a pod under (namespace, its model's name); one without the model label not at all."""
    model = ((body.get("metadata") or {}).get("labels") or {}).get(MODEL_LABEL)
    return {(key_of(body)[0], model): slim(body)} if model else {}


def node(body: Mapping[str, Any]) -> dict[str, Body]:
    """Index every node under one key: the admission reads them all."""
    return {NODES: slim(body)}


def latest(index: Indexed, key: Any) -> Body | None:
    """The object indexed under ``key``, or None.

    kopf keeps an object's values under its namespace, name and uid; an object deleted and made
    again under its name is dropped from the index before the new one comes, so a name has one
    value. Should it have two (an emulator that assigns no uid, then a uid set by a test), the
    one indexed last is the current one.
    """
    found = None
    for found in index.get(key, ()):
        pass
    return found


@dataclass(frozen=True)
class Watched:
    """The indexes a reconcile reads (kopf's live ones, or dicts in a test)."""

    models: Indexed
    rayservices: Indexed
    rayclusters: Indexed
    pods: Indexed
    network_policies: Indexed
    nodes: Indexed


def model_of(kind: str, body: Mapping[str, Any], watched: Watched) -> Key | None:
    """(namespace, name) of the model a child belongs to, or None for someone else's.

    A RayService and a pod carry the model's label; a RayCluster names its RayService as
    controller (KubeRay's); a NetworkPolicy names the model as its owner.
    """
    namespace = key_of(body)[0]
    meta = body.get("metadata") or {}
    if kind in {"rayservices", "pods"}:
        model = (meta.get("labels") or {}).get(MODEL_LABEL)
        return (namespace, model) if model else None
    for ref in meta.get("ownerReferences") or []:
        if kind == "rayclusters" and ref.get("kind") == "RayService":
            parent = latest(watched.rayservices, (namespace, ref.get("name") or ""))
            return model_of("rayservices", parent, watched) if parent else None
        if kind == "networkpolicies" and ref.get("kind") == api.KIND:
            return (namespace, ref.get("name") or "")
    return None


_PASSED = ("patch_model_status", "list_rayservices", "patch_network_policy")
"""The calls that go to the API server and leave nothing to read back (the LIST of a deleted
model's RayServices must see what the API server holds)."""

Known = dict[tuple[str, Any], tuple[Any, tuple[Any, ...]]]
"""(index, key) -> (what the API server said last, the index's values for the key then)."""


@dataclass
class WatchedClient(Client):
    """The API client a reconcile started by an event uses: it reads from :class:`Watched`
    and writes ``through`` the real client (whose calls tests may wrap).

    What the API server answered (a write's result; a resync's read: :class:`ResyncClient`) is
    read back instead of the index until the index changes under that key: the watch then
    delivered an event at least as new as the answer was.
    """

    through: Client = field(default=None)  # type: ignore[assignment]
    watched: Watched = field(default=None)  # type: ignore[assignment]
    statuses: Mapping[str, Body] = field(default_factory=dict)
    """uid -> the status this operator last wrote for the model."""
    known: Known = field(default_factory=dict)
    """Shared with the operator's :class:`ResyncClient`."""

    def __post_init__(self) -> None:
        for name in _PASSED:
            setattr(self, name, getattr(self.through, name))

    @classmethod
    def over(
        cls,
        client: Client,
        watched: Watched,
        statuses: Mapping[str, Body],
        known: Known | None = None,
    ) -> WatchedClient:
        return cls(
            client.api_client,
            through=client,
            watched=watched,
            statuses=statuses,
            known={} if known is None else known,
        )

    def _held(self, index: str, key: Any) -> tuple[Any, ...]:
        return tuple(getattr(self.watched, index).get(key, ()))

    def _remember(self, index: str, key: Any, answer: T) -> T:
        """Hold the API server's ``answer`` under ``key`` (see :meth:`_known`); returns it."""
        self.known[(index, key)] = (copy.deepcopy(answer), self._held(index, key))
        return answer

    def _known(self, index: str, key: Any) -> tuple[bool, Any]:
        """(True, the API server's answer) while the index has not changed under ``key``
        since it came; (False, None) otherwise."""
        if (index, key) not in self.known:
            return False, None
        answer, then = self.known[(index, key)]
        held = self._held(index, key)
        if len(held) == len(then) and all(a is b for a, b in zip(held, then, strict=True)):
            return True, copy.deepcopy(answer)
        del self.known[(index, key)]
        return False, None

    async def _deleted(
        self, index: str, key: Key, delete: Callable[[str, str], Awaitable[bool]]
    ) -> bool:
        """``delete`` the object under ``key``: whether it was there. It reads as gone from then
        until the index changes under ``key`` (the watch delivered the deletion, or a new one)."""
        deleted = await delete(*key)
        self._remember(index, key, None)
        return deleted

    def _read(self, index: str, key: Key) -> Body | None:
        """The indexed object, or the API server's newer answer."""
        known, answer = self._known(index, key)
        return answer if known else copy.deepcopy(latest(getattr(self.watched, index), key))

    # Reads: from the indexes, or the API server's newer answer (:meth:`_read`).

    async def get_model(self, namespace: str, name: str) -> Body | None:
        found = latest(self.watched.models, (namespace, name))
        if found is None:
            return None
        body = copy.deepcopy(found)
        written = self.statuses.get(body["metadata"].get("uid") or "")
        if written is not None:
            body["status"] = copy.deepcopy(written)
        return body

    async def get_rayservice(self, namespace: str, name: str) -> Body | None:
        return self._read("rayservices", (namespace, name))

    async def get_raycluster(self, namespace: str, name: str) -> Body | None:
        return self._read("rayclusters", (namespace, name))

    async def get_network_policy(self, namespace: str, name: str) -> Body | None:
        return self._read("network_policies", (namespace, name))

    async def list_model_pods(self, namespace: str, model: str) -> list[Body]:
        known, answer = self._known("pods", (namespace, model))
        if known:
            return list(answer)
        return [copy.deepcopy(p) for p in self.watched.pods.get((namespace, model), ())]

    async def list_nodes(self) -> list[Body] | None:
        known, answer = self._known("nodes", NODES)
        return answer if known else list(self.watched.nodes.get(NODES, ()))

    # Writes: through to the API server, whose answer is read back (:meth:`_remember`).

    async def create_rayservice(self, body: Body) -> Body:
        created = await self.through.create_rayservice(body)
        return self._remember("rayservices", key_of(created), created)

    async def patch_rayservice(self, namespace: str, name: str, patch: Body) -> Body:
        patched = await self.through.patch_rayservice(namespace, name, patch)
        return self._remember("rayservices", (namespace, name), patched)

    async def delete_rayservice(self, namespace: str, name: str) -> bool:
        return await self._deleted("rayservices", (namespace, name), self.through.delete_rayservice)

    async def patch_raycluster(self, namespace: str, name: str, operations: list[Body]) -> Body:
        patched = await self.through.patch_raycluster(namespace, name, operations)
        return self._remember("rayclusters", (namespace, name), patched)

    async def delete_raycluster(self, namespace: str, name: str) -> bool:
        return await self._deleted("rayclusters", (namespace, name), self.through.delete_raycluster)

    async def create_network_policy(self, body: Body) -> None:
        await self.through.create_network_policy(body)
        self._remember("network_policies", key_of(body), body)


@dataclass
class ResyncClient(WatchedClient):
    """The client of the safety net: it reads from the API server, as the operator did before
    it watched, and leaves what it read for :class:`WatchedClient` (shared ``known``), so a
    change the watch missed stays seen after the resync, until the watch catches up."""

    async def get_model(self, namespace: str, name: str) -> Body | None:
        return await self.through.get_model(namespace, name)

    async def get_rayservice(self, namespace: str, name: str) -> Body | None:
        found = await self.through.get_rayservice(namespace, name)
        return self._remember("rayservices", (namespace, name), found)

    async def get_raycluster(self, namespace: str, name: str) -> Body | None:
        found = await self.through.get_raycluster(namespace, name)
        return self._remember("rayclusters", (namespace, name), found)

    async def get_network_policy(self, namespace: str, name: str) -> Body | None:
        found = await self.through.get_network_policy(namespace, name)
        return self._remember("network_policies", (namespace, name), found)

    async def list_model_pods(self, namespace: str, model: str) -> list[Body]:
        found = await self.through.list_model_pods(namespace, model)
        return self._remember("pods", (namespace, model), found)

    async def list_nodes(self) -> list[Body] | None:
        found = await self.through.list_nodes()
        if found is not None:
            self._remember("nodes", NODES, found)
        return found
