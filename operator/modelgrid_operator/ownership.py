"""Whose a child object is: read off its controller owner reference. Pure.

The operator writes and deletes only RayServices whose controller owner reference names the
InferenceModel's uid. A RayService of the same name made by hand, by another controller or by
an older model of that name is someone else's: a tenant who names an InferenceModel after it
must not take it over, patch it or delete it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference with ``controller: true``, or None (Kubernetes allows at most one)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if isinstance(r, dict) and r.get("controller") is True), None)


def is_owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when ``obj``'s controller is the object with ``uid``."""
    controller = controller_of(obj)
    return bool(uid) and controller is not None and controller.get("uid") == uid


def describe_owner(obj: Mapping[str, Any]) -> str:
    """Who controls ``obj``, for a condition message."""
    controller = controller_of(obj)
    if controller is None:
        return "it has no controller owner reference (made by hand or by another tool)"
    return (
        f"it is controlled by {controller.get('kind', '?')} {controller.get('name', '?')} "
        f"(uid {controller.get('uid', '?')})"
    )
