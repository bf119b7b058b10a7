"""Kubernetes mode: the gateway watches InferenceModels (kmock's API emulator) and a keys Secret.

The gateway runs as a process of its own, pointed at kmock by a kubeconfig; kmock serves from
this test's event loop, so the test waits with ``await``. Status is written here as the operator
would; the endpoint is a real mlx_lm.server. mlx_lm.server answers its own model to the name
``default_model``, so that is the served name here.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml
from emulated_cluster import point_client_at
from gateway_support import Backends, Servers
from modelgrid_serving.gateway.auth import hash_key
from polling import eventually

pytestmark = pytest.mark.integration

NAMESPACE = "default"
IM = "modelgrid.io/v1alpha1/inferencemodels"
GROUP, VERSION, PLURAL = "modelgrid.io", "v1alpha1", "inferencemodels"
SERVED = "default_model"
KEY = "sk-k8s-0001"


@pytest.fixture()
def kube(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any, Any]:
    """kmock with InferenceModels declared; a kubeconfig for it; API clients for the test."""
    kubeconfig = tmp_path / "kubeconfig"
    api = point_client_at(kmock, kubeconfig, monkeypatch)
    return kubeconfig, kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api)


def inference_model(name: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceModel",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}"},
        "spec": {"servedModelName": SERVED, "aliases": ["k8s-alias"]},
        "status": status,
    }


async def start_gateway(servers: Servers, kubeconfig: Path, config: dict[str, Any]) -> str:
    """Start the gateway without blocking this loop (kmock answers from it)."""
    gw = await asyncio.to_thread(
        servers.gateway,
        config,
        name="gateway-k8s",
        env={"KUBECONFIG": str(kubeconfig)},
        extra_args=("--kubernetes", "--namespace", NAMESPACE),
    )
    return gw.url


async def test_inferencemodels_are_routed_as_their_status_changes(
    kube: tuple[Path, Any, Any], servers: Servers, backends: Backends
) -> None:
    kubeconfig, custom, _ = kube
    url = await start_gateway(servers, kubeconfig, {"limits": {"health_interval_s": 0}})
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await eventually(lambda: _status(http, "/ready", 200), timeout=30, what="the first listing")
        body = inference_model("llama", phase="Loading", servedModelNames=[SERVED, "k8s-alias"])
        await asyncio.to_thread(
            custom.create_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, body
        )
        # known but loading: 503 with Retry-After, not 404, and not listed
        await eventually(
            lambda: _status(http, "/v1/models/k8s-alias", 503), timeout=10, what="503 loading"
        )
        assert (await http.get("/v1/models")).json()["data"] == []

        ready = {
            "status": {
                "phase": "Ready",
                "endpoint": backends.a.url + "/v1",
                "servedModelNames": [SERVED, "k8s-alias"],
                "readyReplicas": 1,
                "pools": [
                    {
                        "name": "cpu",
                        "accelerator": "cpu",
                        "engine": "mlx",
                        "readyReplicas": 1,
                        "desiredReplicas": 1,
                    }
                ],
            }
        }
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, "llama", ready
        )
        await eventually(
            lambda: _status(http, "/v1/models/k8s-alias", 200), timeout=10, what="ready"
        )
        listed = {m["id"] for m in (await http.get("/v1/models")).json()["data"]}
        assert listed == {SERVED, "k8s-alias"}
        chat = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert (await http.post("/v1/chat/completions", json=chat)).status_code == 200
        stats = (await http.get("/v1/stats")).json()["models"][0]
        assert stats["source"] == "kubernetes:default/llama"
        assert stats["pools"][0]["ready_replicas"] == 1

        await asyncio.to_thread(
            custom.delete_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, "llama"
        )
        await eventually(
            lambda: _status(http, "/v1/models/k8s-alias", 404), timeout=10, what="404 deleted"
        )


async def test_keys_come_from_a_watched_secret(
    kube: tuple[Path, Any, Any], servers: Servers
) -> None:
    kubeconfig, _, core = kube
    config = {
        "auth": {"enabled": True, "secret_name": "gateway-keys", "secret_namespace": NAMESPACE},
        "limits": {"health_interval_s": 0},
    }
    url = await start_gateway(servers, kubeconfig, config)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        headers = {"authorization": f"Bearer {KEY}"}
        assert (await http.get("/v1/models", headers=headers)).status_code == 401
        doc = yaml.safe_dump({"keys": [{"name": "ci", "sha256": hash_key(KEY)}]})
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gateway-keys", "namespace": NAMESPACE},
            "data": {"keys.yaml": base64.b64encode(doc.encode()).decode()},
        }
        await asyncio.to_thread(core.create_namespaced_secret, NAMESPACE, secret)
        await eventually(
            lambda: _status(http, "/v1/models", 200, headers=headers),
            timeout=10,
            what="key accepted",
        )
        assert (await http.get("/ready")).status_code == 200


async def _status(http: httpx.AsyncClient, path: str, want: int, **kw: Any) -> bool:
    return (await http.get(path, **kw)).status_code == want
