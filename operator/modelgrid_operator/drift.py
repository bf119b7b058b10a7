"""Decide whether a live child differs from what the spec renders to, and the patch that puts
it back. Pure.

Two kinds of fields live in a RayService:

- **Pod templates are ours entirely**: ``rayClusterConfig.headGroupSpec.template`` and each
  ``workerGroupSpecs[].template``. Any field there that we do not render is drift, however it
  got there: a hand-added ``hostNetwork``, a ``privileged`` securityContext, another
  ``serviceAccountName``, an extra container or volume. The only fields tolerated are those
  that say what leaving the field out says: empty values, ``false``, and the defaults the API
  server or the CRD schema fill in (:data:`TEMPLATE_DEFAULTS`); resource quantities are
  compared by value (``1Gi`` = ``1073741824``).
- **Everywhere else**, a live object matches when every field we render is there with our
  value; fields only others set (``spec.suspend``, KubeRay's schema defaults such as a worker
  group's ``numOfHosts``, extra labels) are left alone.

The patch is a JSON merge patch (RFC 7386): lists replace the stored ones whole (so a worker
group's template comes back exactly as rendered), and a field of a template reached through
objects only (the head group's) is removed by sending ``null`` for it.
"""

from __future__ import annotations

from typing import Any

from modelgrid_operator.quantity import parse_quantity

OWNED_METADATA = ("labels", "ownerReferences")

OWNED_TEMPLATES = (
    ("rayClusterConfig", "headGroupSpec", "template"),
    ("rayClusterConfig", "workerGroupSpecs", "*", "template"),
)
"""Paths under ``spec`` whose whole subtree we own (``*``: every list item)."""

TEMPLATE_DEFAULTS: dict[str, tuple[object, ...]] = {
    "protocol": ("TCP",),  # ContainerPort: a default in KubeRay's CRD schema
    "terminationMessagePath": ("/dev/termination-log",),
    "terminationMessagePolicy": ("File",),
    "imagePullPolicy": ("IfNotPresent", "Always"),
    "restartPolicy": ("Always",),
    "dnsPolicy": ("ClusterFirst",),
    "schedulerName": ("default-scheduler",),
    "terminationGracePeriodSeconds": (30,),
    "serviceAccountName": ("default",),
    "serviceAccount": ("default",),
}
"""Fields a server may fill into a pod template that mean what their absence means."""

Path = tuple[str, ...]


def contains(live: Any, desired: Any) -> bool:
    """True when ``live`` holds everything in ``desired`` (dicts by key, lists item by item)."""
    return _matches(live, desired, (), owned=False)


def spec_matches(live: Any, desired: Any) -> bool:
    """True when a live RayService ``spec`` holds the rendered one, by the rules above (pod
    templates owned whole, elsewhere only our fields compared)."""
    return _matches(live, desired, (), owned=False)


def _owned(path: Path) -> bool:
    """True when ``path`` (relative to ``spec``; list items as ``*``) is in an owned subtree."""
    return any(
        len(path) >= len(root) and all(p == r for p, r in zip(path, root, strict=False))
        for root in OWNED_TEMPLATES
    )


def _tolerated(key: str, value: Any) -> bool:
    """A field we do not render whose value says what leaving it out says."""
    if value is None or value is False or value == "" or value == {} or value == []:
        return True
    return any(type(value) is type(d) and value == d for d in TEMPLATE_DEFAULTS.get(key, ()))


def _same_scalar(live: Any, desired: Any, path: Path) -> bool:
    if live == desired and isinstance(live, bool) == isinstance(desired, bool):
        return True
    if len(path) >= 2 and path[-2] in ("requests", "limits"):  # resource quantities
        a, b = parse_quantity(live), parse_quantity(desired)
        return a is not None and a == b
    return False


def _matches(live: Any, desired: Any, path: Path, *, owned: bool) -> bool:
    """Does ``live`` match ``desired``? In owned subtrees, extra fields must be tolerated."""
    owned = owned or _owned(path)
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        if not all(
            key in live and _matches(live[key], value, (*path, key), owned=owned)
            for key, value in desired.items()
        ):
            return False
        return not owned or all(_tolerated(k, v) for k, v in live.items() if k not in desired)
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(
                _matches(a, b, (*path, "*"), owned=owned)
                for a, b in zip(live, desired, strict=True)
            )
        )
    return _same_scalar(live, desired, path)


def _merge_patch(live: Any, desired: Any, path: Path, *, owned: bool) -> Any:
    """``desired`` as a merge patch over ``live``: in owned objects, the fields that only live
    has and that are not tolerated are sent as ``null`` (removed)."""
    owned = owned or _owned(path)
    if not (isinstance(desired, dict) and isinstance(live, dict)):
        return desired  # a list or scalar replaces what is stored; so does a new object
    patch = {
        key: _merge_patch(live.get(key), value, (*path, key), owned=owned)
        for key, value in desired.items()
    }
    if owned:
        patch.update(
            {k: None for k, v in live.items() if k not in desired and not _tolerated(k, v)}
        )
    return patch


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
    if not spec_matches(live.get("spec"), desired["spec"]):
        patch["spec"] = _merge_patch(live.get("spec"), desired["spec"], (), owned=False)
    return patch or None
