"""The images, built from images/Dockerfile without a Docker engine and run with podman, as a
cluster runs them: as uid 10001 on a read-only root file system with a writable /tmp.

- the ``modelgrid`` image: the operator answers ``--help`` and serves its metrics and health
  ports; the gateway serves ``/health`` and proxies the OpenAI SDK to a replica;
- the ``serving-cpu`` image: ``modelgrid up`` serves the tiny model (Ray Serve + vLLM's CPU
  build, torch.compile included) to the OpenAI SDK; it is also the gateway's replica above.

``.ci/images.sh`` builds each image once per session (pip's downloads are cached under
``$MODELGRID_CACHE/images``, outside the clone). Without buildah or podman the tests skip and
name what is missing; ``.ci/run`` installs both, so CI runs them. Build times and sizes are
printed (``-s`` shows them); docs/install.md records them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from images_support import IMAGES_SH, ROOT
from local_stack import free_port
from polling import wait_for

pytestmark = pytest.mark.integration

BUILD_TIMEOUT_S = 3600
SERVING_READY_S = 600
EXAMPLE = ROOT / "examples" / "cpu-tiny.yaml"
MODEL = "tiny-chat"


def _images_sh(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(IMAGES_SH), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def image() -> Callable[[str], str]:
    """``image(target)``: the local image of ``target``, built on first use in this session."""
    for tool in ("buildah", "podman"):
        if shutil.which(tool) is None:
            pytest.skip(
                f"{tool} is not installed (Debian: apt-get install buildah podman runc "
                "debootstrap; .ci/run installs them)"
            )
    built: dict[str, str] = {}

    def build(target: str) -> str:
        if target not in built:
            start = time.monotonic()
            result = _images_sh("build", target, timeout=BUILD_TIMEOUT_S)
            assert result.returncode == 0, result.stderr[-5000:]
            built[target] = result.stdout.split()[-1]
            print(
                f"\n{target}: {result.stderr.strip().splitlines()[-1]} "
                f"({time.monotonic() - start:.0f} s with this session's cache)"
            )
        return built[target]

    return build


class Containers:
    """Containers a test starts (podman, host network, the pods' security context); each is
    removed when the test ends, and its log printed (``-s`` or a failure's captured output
    shows it)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.names: list[str] = []

    def start(
        self,
        image: str,
        *command: str,
        volumes: dict[Path, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        name = f"modelgrid-test-{uuid.uuid4().hex[:8]}"
        scratch = self.scratch(name)
        scratch.mkdir()
        shutil.chown(scratch, 10001, 10001)  # the pods' /tmp is an emptyDir they own
        mounts = [f"--volume={scratch}:/tmp"]
        for host, inside in (volumes or {}).items():
            mounts.append(f"--volume={host}:{inside}:ro")
        mounts += [f"--env={key}={value}" for key, value in (env or {}).items()]
        result = _images_sh(
            "run",
            "--detach",
            f"--name={name}",
            "--pull=never",
            "--network=host",
            "--read-only",
            "--shm-size=1g",
            "--user=10001:10001",
            *mounts,
            image,
            *command,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        self.names.append(name)
        return name

    def scratch(self, name: str) -> Path:
        """The host folder mounted as the container's /tmp (its HOME)."""
        return self.tmp_path / name

    def running(self, name: str) -> bool:
        result = _images_sh("podman", "inspect", "--format", "{{.State.Running}}", name, timeout=60)
        return result.stdout.strip() == "true"

    def log(self, name: str) -> str:
        return _images_sh("podman", "logs", name, timeout=60).stdout[-4000:]

    def alive_or_fail(self, name: str) -> None:
        if not self.running(name):
            pytest.fail(f"container {name} stopped:\n{self.log(name)}")

    def remove_all(self) -> None:
        for name in self.names:
            print(f"\n--- {name}\n{self.log(name)}")
            _images_sh("podman", "rm", "--force", "--time=10", name, timeout=120)


@pytest.fixture
def containers(tmp_path: Path) -> Iterator[Containers]:
    started = Containers(tmp_path)
    yield started
    started.remove_all()


@pytest.fixture(scope="module")
def replica(image: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The serving-cpu image running ``modelgrid up examples/cpu-tiny.yaml``, ready: its
    OpenAI base URL."""
    started = Containers(tmp_path_factory.mktemp("replica"))
    port = free_port()
    name = started.start(
        image("serving-cpu"),
        "modelgrid",
        "up",
        "/examples/cpu-tiny.yaml",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        volumes={EXAMPLE: "/examples/cpu-tiny.yaml"},
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        start = time.monotonic()
        wait_for(
            lambda: started.alive_or_fail(name) or _chat(url),
            timeout=SERVING_READY_S,
            what="a chat completion from the serving-cpu container",
        )
        print(f"\nserving-cpu: modelgrid up answered after {time.monotonic() - start:.0f} s")
        # vLLM compiled its CPU kernels in the container (TorchInductor's C++ built with the
        # image's g++: the run-time need images/README.md justifies).
        assert list(started.scratch(name).glob(".cache/vllm/torch_compile_cache/**/*.so"))
        yield url
    finally:
        started.remove_all()


def _get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None


def _chat(base_url: str) -> str | None:
    """One chat completion through the OpenAI SDK; None while the server is not ready."""
    from openai import APIConnectionError, APIStatusError, OpenAI

    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
    try:
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=8,
        )
    except APIConnectionError:
        return None
    except APIStatusError as exc:
        if exc.status_code == 503:
            return None
        raise
    assert reply.choices[0].message.content, reply
    assert reply.usage and reply.usage.completion_tokens > 0
    return reply.model


def test_images_operator_answers_help(image: Callable[[str], str]):
    result = _images_sh(
        "run",
        "--rm",
        "--pull=never",
        "--read-only",
        image("modelgrid"),
        "modelgrid",
        "operator",
        "--help",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: modelgrid operator"), result.stdout


def test_images_operator_serves_metrics_and_health(
    image: Callable[[str], str], containers: Containers, tmp_path: Path
):
    """No cluster: the operator imports everything its command runs, serves its metrics, and
    keeps trying to reach the API server (as test_install_extras does outside an image)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    kubeconfig.chmod(0o644)
    metrics, health = free_port(), free_port()
    name = containers.start(
        image("modelgrid"),
        "modelgrid",
        "operator",
        f"--metrics-port={metrics}",
        f"--health-port={health}",
        volumes={kubeconfig: "/config/kubeconfig"},
        env={"KUBECONFIG": "/config/kubeconfig"},
    )

    def exported() -> str | None:
        containers.alive_or_fail(name)
        answer = _get(f"http://127.0.0.1:{metrics}/metrics")
        return answer[1] if answer and answer[0] == 200 else None

    assert "modelgrid_operator_" in wait_for(exported, timeout=120, what="the operator's /metrics")
    containers.alive_or_fail(name)


def test_images_serving_cpu_serves_the_tiny_model_to_the_openai_sdk(replica: str):
    assert _chat(replica) == MODEL


def test_images_gateway_serves_health_and_proxies_to_a_replica(
    image: Callable[[str], str], containers: Containers, replica: str, tmp_path: Path
):
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": MODEL, "backends": [{"url": replica}]}]}))
    config.chmod(0o644)
    port, metrics = free_port(), free_port()
    # The chart's command line (values.yaml gateway.command and args), without --kubernetes.
    name = containers.start(
        image("modelgrid"),
        "python",
        "-m",
        "modelgrid_serving.gateway",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--metrics-port={metrics}",
        "--config=/config/gateway.yaml",
        volumes={config: "/config/gateway.yaml"},
    )

    def healthy() -> bool:
        containers.alive_or_fail(name)
        answer = _get(f"http://127.0.0.1:{port}/health")
        return bool(answer and answer[0] == 200)

    wait_for(healthy, timeout=120, what="the gateway's /health")
    url = f"http://127.0.0.1:{port}/v1"
    assert wait_for(lambda: _chat(url), timeout=120, what="a chat completion through the gateway")
    listing = json.loads(_get(f"{url}/models")[1])
    assert MODEL in {entry["id"] for entry in listing["data"]}
