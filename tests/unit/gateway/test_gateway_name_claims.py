"""The gateway's Kubernetes source routes a served name only to the namespace that owns it
(modelgrid_serving.claims), at once, before any operator has written a condition."""

from __future__ import annotations

from typing import Any

import pytest
from modelgrid_serving.gateway.routing import build_table
from modelgrid_serving.gateway.sources import NamespacedModels, entries_from_inferencemodels

pytestmark = [pytest.mark.unit, pytest.mark.security]


def inference_model(
    namespace: str, name: str, created: str, *, share: list[str] | None = None
) -> dict[str, Any]:
    """A Ready InferenceModel serving ``llama-3-8b`` as the watch returns it."""
    spec: dict[str, Any] = {"servedModelName": "llama-3-8b"}
    if share is not None:
        spec["shareNamesWith"] = share
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": spec,
        "status": {
            "phase": "Ready",
            "servedModelNames": ["llama-3-8b"],
            "readyReplicas": 1,
            "endpoint": f"http://{name}-serve-svc.{namespace}.svc:8000/v1",
        },
    }


def backends(objs: list[dict[str, Any]]) -> list[str]:
    table = build_table(entries_from_inferencemodels(objs))
    return [b.url for b in table.resolve("llama-3-8b").backends]


def test_gateway_second_namespace_with_the_same_name_is_not_routed() -> None:
    owner = inference_model("team-a", "llama", "2026-12-01T10:00:00Z")
    thief = inference_model("team-b", "copy", "2026-12-02T10:00:00Z")
    expected = ["http://llama-serve-svc.team-a.svc:8000/v1"]
    assert backends([owner, thief]) == expected
    assert backends([thief, owner]) == expected  # the order of the watch does not matter


def test_gateway_routes_both_namespaces_when_both_opt_in() -> None:
    owner = inference_model("team-a", "llama", "2026-12-01T10:00:00Z", share=["team-b"])
    mac = inference_model("team-b", "mac", "2026-12-02T10:00:00Z", share=["team-a"])
    assert sorted(backends([owner, mac])) == [
        "http://llama-serve-svc.team-a.svc:8000/v1",
        "http://mac-serve-svc.team-b.svc:8000/v1",
    ]


def test_gateway_model_that_holds_no_name_is_not_listed_at_all() -> None:
    owner = inference_model("team-a", "llama", "2026-12-01T10:00:00Z")
    thief = inference_model("team-b", "copy", "2026-12-02T10:00:00Z")
    sources = {e.source for e in entries_from_inferencemodels([owner, thief])}
    assert sources == {"kubernetes:team-a/llama"}


def test_gateway_claims_cross_separately_watched_namespaces() -> None:
    """With one watch per namespace, each namespace's entries still see the others' claims,
    and a change in one namespace (the owner deleted) re-resolves the other."""
    watched = NamespacedModels()
    thief = inference_model("team-b", "copy", "2026-12-02T10:00:00Z")
    owner = inference_model("team-a", "llama", "2026-12-01T10:00:00Z")
    assert [e.name for e in watched.report("kubernetes:team-b", [thief])["kubernetes:team-b"]] == [
        "llama-3-8b"
    ]  # alone, team-b's model holds the name
    both = watched.report("kubernetes:team-a", [owner])
    assert both["kubernetes:team-b"] == []
    assert [e.source for e in both["kubernetes:team-a"]] == ["kubernetes:team-a/llama"]
    after = watched.report("kubernetes:team-a", [])
    assert [e.source for e in after["kubernetes:team-b"]] == ["kubernetes:team-b/copy"]
