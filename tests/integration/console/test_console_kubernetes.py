"""The console of a gateway in Kubernetes mode: an InferenceModel's phase, pools, conditions and
time to ready as its status changes (kmock as the API server, the status written here as the
operator writes it, a real mlx_lm.server as the endpoint once Ready).

kmock answers from this test's event loop, so the browser is driven with Playwright's async API.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from console_support import ConsoleStack
from emulated_cluster import point_client_at
from integration.gateway.gateway_support import Servers
from playwright.async_api import async_playwright, expect

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL, NAMESPACE = "modelgrid.io", "v1alpha1", "inferencemodels", "default"
LOADING = "pool mac: loading the model (0 of 1 replicas ready)"


@pytest.fixture()
def custom_api(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    """kmock with InferenceModels declared, a kubeconfig for it, and a client of it."""
    kubeconfig = tmp_path / "kubeconfig"
    api = point_client_at(kmock, kubeconfig, monkeypatch)
    return kubeconfig, kubernetes.client.CustomObjectsApi(api)


@pytest.fixture()
def k8s_servers(custom_api: tuple[Path, Any], tmp_path: Path) -> Iterator[Servers]:
    """Servers of this test only: the gateway stops (closing its watch) before kmock does."""
    with Servers(tmp_path) as servers:
        yield servers


def status(phase: str, **fields: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        "phaseSince": "2026-01-02T03:04:05Z",
        "servedModelNames": ["llama", "llama-chat"],
        "pools": [{"name": "mac", "accelerator": "apple", "engine": "mlx", "desiredReplicas": 1}],
        **fields,
    }


async def test_inferencemodel_phase_conditions_and_time_to_ready_as_status_changes(
    custom_api: tuple[Path, Any],
    k8s_servers: Servers,
    console_stack: ConsoleStack,
    artifacts: Path,
) -> None:
    kubeconfig, custom = custom_api
    gw = await asyncio.to_thread(
        k8s_servers.gateway,
        {"limits": {"health_interval_s": 0}},
        name="console-k8s",
        env={"KUBECONFIG": str(kubeconfig)},
        extra_args=("--kubernetes", "--namespace", NAMESPACE),
    )
    loading = status(
        "Loading",
        conditions=[
            {
                "type": "SpecValid",
                "status": "True",
                "reason": "Valid",
                "message": "",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
            },
            {
                "type": "Ready",
                "status": "False",
                "reason": "LoadingModel",
                "message": LOADING,
                "lastTransitionTime": "2026-01-02T03:04:05Z",
            },
        ],
        timeToReady={"pending": 1.2, "scheduling": 8.5, "loading": 0.0},
    )
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceModel",
        "metadata": {"name": "llama", "namespace": NAMESPACE, "uid": "uid-llama"},
        "spec": {"servedModelName": "llama"},
        "status": loading,
    }
    await asyncio.to_thread(
        custom.create_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, body
    )
    errors: list[str] = []
    async with async_playwright() as pw:
        executable = os.environ.get("MODELGRID_CHROMIUM") or shutil.which("chromium")
        assert executable, "chromium not found: install Debian's 'chromium' package"
        browser = await pw.chromium.launch(executable_path=executable, headless=True)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        await page.goto(gw.url + "/ui/")
        card = page.locator('article[data-model="llama"]')
        await expect(card).to_have_attribute("data-state", "Loading", timeout=15_000)
        await expect(card.locator("tbody td")).to_have_text(["mac", "apple", "mlx", "0/1"])
        await expect(card).to_contain_text("InferenceModel default/llama")
        await expect(card).to_contain_text("default/llama: Loading since")
        await expect(card.locator(".problems li")).to_have_text(
            [f"Ready (LoadingModel): {LOADING}"]
        )
        await expect(card.locator(".legend")).to_have_text("not Ready yet")
        await page.screenshot(path=str(artifacts / "models-kubernetes-loading-1280.png"))

        ready = status(
            "Ready",
            endpoint=console_stack.tiny.url + "/v1",
            readyReplicas=1,
            pools=[
                {
                    "name": "mac",
                    "accelerator": "apple",
                    "engine": "mlx",
                    "readyReplicas": 1,
                    "desiredReplicas": 1,
                }
            ],
            conditions=[
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Serving",
                    "message": "",
                    "lastTransitionTime": "2026-01-02T03:05:05Z",
                },
            ],
            timeToReady={"pending": 1.2, "scheduling": 8.5, "loading": 10.3, "total": 20.0},
        )
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            "llama",
            {"status": ready},
        )
        await expect(card).to_have_attribute("data-state", "Ready", timeout=15_000)
        await expect(card.locator("tbody td")).to_have_text(["mac", "apple", "mlx", "1/1"])
        await expect(card.locator(".problems")).to_have_count(0)
        await expect(card.locator(".legend")).to_have_text(
            "ready after 20.0 s: pending 1.2 s · scheduling 8.5 s · loading 10.3 s"
        )
        await expect(card.locator(".timeline span")).to_have_count(3)
        await page.screenshot(path=str(artifacts / "models-kubernetes-ready-1280.png"))
        await browser.close()
    assert errors == []
