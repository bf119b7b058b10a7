"""Who may serve a model name: claims of InferenceModels across namespaces, resolved. Pure.

The gateway routes by the ``model`` field alone, so a served name (or alias) is shared by every
InferenceModel that declares it. On a shared cluster that would let a tenant in namespace B
declare the name of namespace A's model and receive a share of A's users' prompts. Names are
therefore owned per namespace:

- A name belongs to the namespace of its **first claim**: the InferenceModel with the oldest
  ``creationTimestamp`` (set by the API server; ties broken by ``namespace/name``) among those
  that declare it.
- Every model **in the owning namespace** serves the name (one tenant, one trust domain: two
  InferenceModels of one namespace with one name are one model with several backends, e.g. an
  NVIDIA resource and an Apple resource with different weights).
- A model in **another namespace** holds the name only when both sides opt in: it lists the
  owner's namespace in ``spec.shareNamesWith``, and a model of the owning namespace that declares
  the name lists the claimant's namespace. Otherwise it has lost that name: the gateway does not
  route it there and the operator reports a ``NameConflict``.

A model's claim covers every name it could be routed under: its spec's names and the names its
status reports (so a stale or hand-written status cannot route a name past this check). Both the
operator (its condition) and the gateway (its routing table) call this module, so they always
agree; InferenceModels are read as plain dicts because serving never imports the operator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Claim:
    """The names one InferenceModel declares, and whom it would share them with.

    Attributes:
        namespace: the model's namespace.
        model: the model's resource name.
        names: every name it could be routed under (served name, aliases, status names).
        created: ``metadata.creationTimestamp`` as seconds since the epoch; None when absent or
            unreadable (such a claim ranks after every dated one: it cannot prove it came first).
        share_with: namespaces listed in ``spec.shareNamesWith``.
    """

    namespace: str
    model: str
    names: frozenset[str]
    created: float | None = None
    share_with: frozenset[str] = frozenset()

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace, name)`` of the model."""
        return self.namespace, self.model

    @property
    def rank(self) -> tuple[float, str, str]:
        """Earlier claims sort first: creation time, then namespace, then name."""
        return (math.inf if self.created is None else self.created, self.namespace, self.model)

    def describe(self) -> str:
        """``namespace/name`` of the model, as messages name it."""
        return f"{self.namespace}/{self.model}"


@dataclass(frozen=True)
class LostName:
    """A name a model declares but may not serve.

    Attributes:
        name: the served name or alias.
        owner: the first claim of it, whose namespace owns it.
    """

    name: str
    owner: Claim

    def describe(self) -> str:
        """One sentence for a condition message or a log line."""
        return (
            f"served name {self.name!r} belongs to namespace {self.owner.namespace} "
            f"(InferenceModel {self.owner.describe()} claimed it first)"
        )


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def _created(stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def claim_of(obj: Mapping[str, Any]) -> Claim:
    """The claim of an InferenceModel as the API server returns it (a plain dict).

    Malformed fields claim nothing and share nothing: this reads objects the API server has
    validated, but a hand-written status or an older CRD must not widen what a model holds.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name = str(meta.get("name") or "")
    served = spec.get("servedModelName")
    names = {served if isinstance(served, str) and served else name}
    names.update(_strings(spec.get("aliases")))
    names.update(_strings(status.get("servedModelNames")))
    names.discard("")
    return Claim(
        namespace=str(meta.get("namespace") or "default"),
        model=name,
        names=frozenset(names),
        created=_created(meta.get("creationTimestamp")),
        share_with=frozenset(
            n for n in _strings(spec.get("shareNamesWith")) if _NAMESPACE.match(n)
        ),
    )


def lost_names(claim: Claim, rivals: Iterable[Claim]) -> tuple[LostName, ...]:
    """The names of ``claim`` that it may not serve, in name order.

    Args:
        claim: the model's current claim.
        rivals: claims of other models (any that share none of its names are ignored; an older
            claim of the same model is replaced by ``claim``).
    """
    others = [r for r in rivals if r.key != claim.key and r.names & claim.names]
    lost = []
    for name in sorted(claim.names):
        claimants = [claim, *(r for r in others if name in r.names)]
        owner = min(claimants, key=lambda c: c.rank)
        if owner.namespace == claim.namespace:
            continue
        invited = any(
            c.namespace == owner.namespace and claim.namespace in c.share_with for c in claimants
        )
        if owner.namespace in claim.share_with and invited:
            continue
        lost.append(LostName(name, owner))
    return tuple(lost)


def resolve(claims: Iterable[Claim]) -> dict[tuple[str, str], tuple[LostName, ...]]:
    """Every model's lost names (models that lost none are left out).

    Args:
        claims: the claims of every model the caller sees.

    Returns:
        ``(namespace, name)`` of a model -> the names it may not serve.
    """
    everyone = list(claims)
    by_name: dict[str, list[Claim]] = {}
    for c in everyone:
        for name in c.names:
            by_name.setdefault(name, []).append(c)
    result = {}
    for c in everyone:
        rivals = {r.key: r for name in c.names for r in by_name[name]}.values()
        if lost := lost_names(c, rivals):
            result[c.key] = lost
    return result
