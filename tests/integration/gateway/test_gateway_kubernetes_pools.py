"""A two-pool InferenceModel through the gateway in Kubernetes mode: one backend per pool.

The status is written here as the operator writes it for two pools (``pools[].endpoint``, each
a real mlx_lm.server standing in for one pool's Serve application). Both pools take traffic;
when one pool's server is stopped the model keeps answering, and when the operator reports the
pool without replicas it leaves the route.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import Servers
from polling import eventually
from test_gateway_kubernetes import (  # kube is a fixture: imported to be used here
    GROUP,
    NAMESPACE,
    PLURAL,
    SERVED,
    VERSION,
    _status,
    inference_model,
    kube,  # noqa: F401 - a fixture, used by name
    start_gateway,
)

pytestmark = pytest.mark.integration

CHAT = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def two_pool_status(gpu_url: str, mac_url: str, *, mac_ready: int = 1) -> dict[str, Any]:
    pools = [
        {"name": "gpu", "accelerator": "nvidia", "engine": "vllm", "url": gpu_url, "ready": 1},
        {
            "name": "mac",
            "accelerator": "apple",
            "engine": "mlx",
            "url": mac_url,
            "ready": mac_ready,
        },
    ]
    return {
        "phase": "Ready" if mac_ready else "Degraded",
        "endpoint": gpu_url + "/v1",
        "servedModelNames": [SERVED],
        "readyReplicas": 1 + mac_ready,
        "pools": [
            {
                "name": p["name"],
                "accelerator": p["accelerator"],
                "engine": p["engine"],
                "readyReplicas": p["ready"],
                "desiredReplicas": 1,
                "endpoint": p["url"],
            }
            for p in pools
        ],
    }


async def _pool_requests(http: httpx.AsyncClient) -> dict[str, tuple[bool, int]]:
    (model,) = (await http.get("/v1/stats")).json()["models"]
    return {b["backend"].split("/")[0]: (b["ready"], b["requests"]) for b in model["backends"]}


async def test_two_pool_model_is_two_backends_and_survives_losing_one(
    kube: tuple[Path, Any, Any],  # noqa: F811 - the fixture imported above
    servers: Servers,
    tiny_model: Path,
) -> None:
    kubeconfig, custom, _ = kube
    gpu, mac = servers.mlx(tiny_model, name="pool-gpu"), servers.mlx(tiny_model, name="pool-mac")
    await asyncio.to_thread(gpu.wait_ready)
    await asyncio.to_thread(mac.wait_ready)
    url = await start_gateway(servers, kubeconfig, {"limits": {"health_interval_s": 0}})
    body = inference_model("llama", **two_pool_status(gpu.url, mac.url))
    await asyncio.to_thread(
        custom.create_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, body
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await eventually(
            lambda: _status(http, f"/v1/models/{SERVED}", 200), timeout=30, what="ready"
        )
        for _ in range(16):
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        spread = await _pool_requests(http)
        assert set(spread) == {"gpu", "mac"}
        assert all(ready and count > 0 for ready, count in spread.values()), spread

        # The mac pool's server goes away: requests keep succeeding on the gpu pool.
        await asyncio.to_thread(mac.stop)
        codes = [(await http.post("/v1/chat/completions", json=CHAT)).status_code for _ in range(8)]
        assert codes == [200] * 8

        # The operator reports the pool without replicas: it leaves the route, the model stays.
        patch = {"status": two_pool_status(gpu.url, mac.url, mac_ready=0)}
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, "llama", patch
        )

        async def mac_out() -> bool:
            return not (await _pool_requests(http))["mac"][0]

        await eventually(mac_out, timeout=10, what="mac pool out of the route")
        before = (await _pool_requests(http))["gpu"][1]
        for _ in range(4):
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert (await _pool_requests(http))["gpu"][1] == before + 4


async def test_external_mlx_endpoint_registered_as_a_pool_joins_the_cluster_model(
    kube: tuple[Path, Any, Any],  # noqa: F811 - the fixture imported above
    servers: Servers,
    tiny_model: Path,
) -> None:
    """An Apple machine outside the cluster (its mlx_lm.server) serves the same name as a
    cluster InferenceModel: a static backend with the same served name pools with it."""
    kubeconfig, custom, _ = kube
    gpu, mac = servers.mlx(tiny_model, name="k8s-gpu"), servers.mlx(tiny_model, name="ext-mac")
    await asyncio.to_thread(gpu.wait_ready)
    await asyncio.to_thread(mac.wait_ready)
    static = {
        "models": [{"name": SERVED, "backends": [{"url": mac.url + "/v1", "pool": "mac-studio"}]}],
        "limits": {"health_interval_s": 0.5},
    }
    url = await start_gateway(servers, kubeconfig, static)
    status = two_pool_status(gpu.url, mac.url)
    status["pools"] = status["pools"][:1]  # the cluster model has the gpu pool only
    body = inference_model("llama", **status)
    await asyncio.to_thread(
        custom.create_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, body
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def both_known() -> bool:
            return set(await _pool_requests(http)) == {"gpu", "mac-studio"}

        await eventually(both_known, timeout=30, what="static and cluster backends merged")
        for _ in range(16):
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        spread = await _pool_requests(http)
        assert all(ready and count > 0 for ready, count in spread.values()), spread
