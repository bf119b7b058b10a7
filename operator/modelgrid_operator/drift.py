"""Decide whether a live child differs from what the spec renders to. Pure.

The API server and KubeRay add fields we never set (defaults, status, resourceVersion), so a
live object matches when every field we render is there with our value; fields only the server
set are left alone. A hand edit of a field we own is drift, and the operator writes it back.
"""

from __future__ import annotations

from typing import Any

OWNED_METADATA = ("labels", "ownerReferences")


def contains(live: Any, desired: Any) -> bool:
    """True when ``live`` holds everything in ``desired`` (dicts by key, lists item by item)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and contains(live[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def drift_patch(live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings ``live`` back to ``desired``, or None when nothing differs."""
    patch: dict[str, Any] = {}
    meta = {
        key: desired["metadata"][key]
        for key in OWNED_METADATA
        if key in desired["metadata"]
        and not contains(live.get("metadata", {}).get(key), desired["metadata"][key])
    }
    if meta:
        patch["metadata"] = meta
    if not contains(live.get("spec"), desired["spec"]):
        patch["spec"] = desired["spec"]
    return patch or None
