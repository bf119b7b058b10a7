"""Apply a model's NetworkPolicy next to its RayService.

The policy is rendered by :func:`~modelgrid_operator.render.render_network_policy`; here it is
created when missing and restored when it drifted. A policy of that name that the model does
not own (no owner reference to the model's uid) is left alone: the operator never takes over
an object someone else made.
"""

from __future__ import annotations

import logging
from typing import Any

from modelgrid_operator.k8s import Client

logger = logging.getLogger(__name__)


def _owner_uids(obj: dict[str, Any]) -> set[str]:
    return {ref.get("uid", "") for ref in obj["metadata"].get("ownerReferences") or []}


async def apply_network_policy(client: Client, desired: dict[str, Any]) -> str:
    """Create or correct the model's NetworkPolicy.

    Args:
        client: API access.
        desired: the rendered policy, with its owner reference to the model.

    Returns:
        "created", "patched", "foreign" (a policy of that name the model does not own: not
        written) or "" (already as rendered).
    """
    meta = desired["metadata"]
    live = await client.get_network_policy(meta["namespace"], meta["name"])
    if live is None:
        await client.create_network_policy(desired)
        return "created"
    if not _owner_uids(desired) <= _owner_uids(live):
        logger.warning(
            "NetworkPolicy %s/%s exists and is not owned by the model: left alone",
            meta["namespace"],
            meta["name"],
        )
        return "foreign"
    live_labels = live["metadata"].get("labels") or {}
    if live.get("spec") == desired["spec"] and all(
        live_labels.get(k) == v for k, v in meta["labels"].items()
    ):
        return ""
    await client.patch_network_policy(
        meta["namespace"],
        meta["name"],
        {"metadata": {"labels": meta["labels"]}, "spec": desired["spec"]},
    )
    return "patched"
