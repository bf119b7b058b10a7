"""Health probes of every rendered container, ours rather than KubeRay's injected defaults.

KubeRay injects probes into the Ray container only when the template has none
(``initLivenessAndReadinessProbe``, ray-operator/controllers/ray/common/pod.go): rendered here,
they are visible in ``modelgrid render``, built from our ports, and checked by checkov
(CKV_K8S_8, CKV_K8S_9). Regressions they encode: a worker whose Serve port was not the default
stayed NotReady (KubeRay finds the Serve port by the name ``serve``), and the MLX sidecar's
``httpGet`` probes went to the pod IP while mlx-lm listens on 127.0.0.1 only.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from factories import make_model, pool
from modelgrid_operator.render import render_rayservices
from modelgrid_operator.render.pods import DASHBOARD_AGENT_PORT
from modelgrid_operator.settings import RenderSettings

pytestmark = pytest.mark.unit

ALL_POOLS = [pool("gpu", "nvidia"), pool("cpu", "cpu"), pool("mac", "apple")]


def _cluster(settings: RenderSettings, uri: str = "hf://org/demo-1b") -> dict[str, Any]:
    model = make_model(model={"uri": uri}, engine="auto", pools=ALL_POOLS)
    clusters = [
        rs["spec"]["rayClusterConfig"] for rs in render_rayservices(model, settings=settings)
    ]
    # Every pool's cluster has a head alike but for its image; the groups are one per pool.
    return {
        "headGroupSpec": clusters[0]["headGroupSpec"],
        "workerGroupSpecs": [g for c in clusters for g in c["workerGroupSpecs"]],
    }


def _container(template: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in template["spec"]["containers"] if c["name"] == name]
    return found


def test_render_probes_head_checks_its_node_through_the_dashboard_agent():
    head = _container(_cluster(RenderSettings())["headGroupSpec"]["template"], "ray-head")
    for probe in ("livenessProbe", "readinessProbe"):
        assert head[probe]["httpGet"] == {"path": "/api/healthz", "port": DASHBOARD_AGENT_PORT}
        assert head[probe]["timeoutSeconds"] == 5  # KubeRay's head timeout: GCS and raylet
    assert head["livenessProbe"]["failureThreshold"] * head["livenessProbe"]["periodSeconds"] >= 600


@pytest.mark.parametrize("serve_port", [8000, 9321])
def test_render_probes_worker_is_ready_only_while_its_serve_proxy_answers(serve_port):
    settings = RenderSettings(serve_port=serve_port)
    for group in _cluster(settings)["workerGroupSpecs"]:
        worker = _container(group["template"], "ray-worker")
        assert {"name": "serve", "containerPort": serve_port} in worker["ports"], group["groupName"]
        readiness = worker["readinessProbe"]
        assert "httpGet" not in readiness
        bash, flag, script = readiness["exec"]["command"]
        assert (bash, flag) == ("bash", "-c")
        raylet, proxy = script.split(" && ")
        assert f"http://localhost:{DASHBOARD_AGENT_PORT}/api/local_raylet_healthz" in raylet
        assert f"http://localhost:{serve_port}/-/healthz | grep success" in proxy
        assert readiness["failureThreshold"] == 1  # out of the serve Service at once
        assert worker["livenessProbe"]["httpGet"]["port"] == DASHBOARD_AGENT_PORT


def test_render_probes_every_container_has_both_init_containers_none():
    """Kubernetes refuses liveness/readiness probes on (non-sidecar) init containers."""
    cluster = _cluster(RenderSettings(), uri="builtin://tiny-llama")
    templates = [cluster["headGroupSpec"]["template"]]
    templates += [g["template"] for g in cluster["workerGroupSpecs"]]
    for template in templates:
        for container in template["spec"]["containers"]:
            assert {"livenessProbe", "readinessProbe"} <= set(container), container["name"]
        for container in template["spec"].get("initContainers", []):
            assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)


def _mlx_sidecar(settings: RenderSettings) -> dict[str, Any]:
    (mac,) = [g for g in _cluster(settings)["workerGroupSpecs"] if g["groupName"] == "mac"]
    return _container(mac["template"], "mlx-server")


def test_render_probes_mlx_sidecar_asks_where_it_listens():
    settings = RenderSettings(mlx_port=9555)
    sidecar = _mlx_sidecar(settings)
    args = sidecar["args"]
    host, port = args[args.index("--host") + 1], args[args.index("--port") + 1]
    assert host == "127.0.0.1"  # kubelet's httpGet goes to the pod IP: it could never answer
    for name in ("livenessProbe", "readinessProbe"):
        probe = sidecar[name]
        assert "httpGet" not in probe and "tcpSocket" not in probe
        python, flag, code = probe["exec"]["command"]
        assert (python, flag) == ("python", "-c")
        assert f"http://{host}:{port}/health" in code
        assert probe["timeoutSeconds"] >= 3


class _Recorder:
    def __init__(self, status: int) -> None:
        self.status, self.calls = status, []

    def __call__(self, url: str, timeout: float) -> None:
        self.calls.append((url, timeout))
        if self.status >= 400:
            raise urllib.error.HTTPError(url, self.status, "unavailable", {}, None)  # type: ignore[arg-type]


def _run_probe_code(code: str, monkeypatch: pytest.MonkeyPatch, status: int) -> _Recorder:
    recorder = _Recorder(status)
    monkeypatch.setattr(urllib.request, "urlopen", recorder)
    exec(compile(code, "<probe>", "exec"), {})  # noqa: S102 (our own rendered probe)
    return recorder


def test_render_probes_mlx_probe_code_fails_on_503_within_its_timeout(monkeypatch):
    """What ``python -c`` runs: one request to /health, bounded below the probe's timeout;
    a 503 (mlx-lm's generation thread died) raises, so the process exits non-zero."""
    settings = RenderSettings()
    probe = _mlx_sidecar(settings)["livenessProbe"]
    code = probe["exec"]["command"][2]
    ok = _run_probe_code(code, monkeypatch, 200)
    ((url, timeout),) = ok.calls
    assert url == f"http://127.0.0.1:{settings.mlx_port}/health"
    assert timeout < probe["timeoutSeconds"]
    with pytest.raises(urllib.error.HTTPError):
        _run_probe_code(code, monkeypatch, 503)
