"""Name claims in a running gateway that watches two namespaces (kmock's API emulator): a
tenant's InferenceModel in ``team-b`` with the served name of ``default``'s model is not routed,
until both sides declare the share; each namespace is its own watch, resolved together."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
from emulated_cluster import point_client_at
from gateway_support import Servers
from polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.security]

GROUP, VERSION, PLURAL = "modelgrid.io", "v1alpha1", "inferencemodels"
SERVED = "llama-3.1-8b-instruct"


def inference_model(namespace: str, name: str, created: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceModel",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": created,
        },
        "spec": {"servedModelName": SERVED},
        "status": {
            "phase": "Ready",
            "endpoint": f"http://{name}-serve-svc.{namespace}.svc:8000/v1",
            "servedModelNames": [SERVED],
            "readyReplicas": 1,
        },
    }


async def test_gateway_routes_a_name_to_the_namespace_that_claimed_it_first(
    kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, servers: Servers
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    custom = kubernetes.client.CustomObjectsApi(point_client_at(kmock, kubeconfig, monkeypatch))

    async def create(body: dict[str, Any]) -> None:
        ns = body["metadata"]["namespace"]
        await asyncio.to_thread(
            custom.create_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, body
        )

    async def share(namespace: str, name: str, other: str) -> None:
        patch = {"spec": {"shareNamesWith": [other]}}
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch
        )

    await create(inference_model("default", "llama", "2026-12-01T10:00:00Z"))
    await create(inference_model("team-b", "copy", "2026-12-02T10:00:00Z"))
    gw = await asyncio.to_thread(
        servers.gateway,
        {"limits": {"health_interval_s": 0}},
        name="gateway-claims",
        env={"KUBECONFIG": str(kubeconfig)},
        extra_args=("--kubernetes", "--namespace", "default", "--namespace", "team-b"),
    )

    async def sources(http: httpx.AsyncClient) -> set[str]:
        models = (await http.get("/v1/stats")).json()["models"]
        return {s for m in models if m["id"] == SERVED for s in m["source"].split(",")}

    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        owner_only = {"kubernetes:default/llama"}
        await eventually(
            lambda: _equals(sources(http), owner_only), timeout=30, what="the owner alone"
        )
        await share("default", "llama", "team-b")
        await share("team-b", "copy", "default")
        both = {"kubernetes:default/llama", "kubernetes:team-b/copy"}
        await eventually(lambda: _equals(sources(http), both), timeout=10, what="both, shared")


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected
