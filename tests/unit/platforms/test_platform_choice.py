"""What ``.ci/platform.sh`` chooses on each platform, and how ``make up`` picks its default model.

Every platform is tested here on any machine: ``MODELGRID_PLATFORM_OS``/``ARCH``/``GPU`` stand in
for ``uname`` and ``nvidia-smi``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from platform_support import PLATFORM_SH, ROOT, choose, declared_extras

pytestmark = pytest.mark.unit

MAC = "serve,mlx,tiny-model,dev"
LINUX = "vllm-cpu,mlx,dev"


@pytest.mark.parametrize(
    ("os_name", "arch", "gpu", "extras", "model"),
    [
        ("Darwin", "arm64", "none", MAC, "examples/mlx-tiny.yaml"),
        ("Linux", "x86_64", "none", LINUX, "examples/cpu-tiny.yaml"),
        ("Linux", "aarch64", "none", LINUX, "examples/cpu-tiny.yaml"),
        ("Linux", "x86_64", "nvidia", LINUX, "examples/cpu-tiny.yaml"),
        ("Linux", "aarch64", "nvidia", LINUX, "examples/cpu-tiny.yaml"),
    ],
)
def test_platform_choice_per_machine(os_name, arch, gpu, extras, model):
    choice = choose(os_name, arch, gpu=gpu)
    assert choice.returncode == 0, choice.stderr
    assert (choice.extras, choice.model) == (extras, model)
    assert choice.reason  # says why


def test_platform_choice_says_why_on_a_mac():
    reason = choose("Darwin", "arm64").reason
    assert "MLX on Metal" in reason and "vLLM is built for Linux only" in reason


def test_platform_choice_with_an_nvidia_gpu_says_how_to_get_vllm_cuda():
    reason = choose("Linux", "x86_64", gpu="nvidia").reason
    assert "NVIDIA GPU" in reason and "MODELGRID_EXTRAS=vllm,mlx,dev" in reason
    assert "NVIDIA" not in choose("Linux", "x86_64").reason


def test_platform_choice_every_extra_exists_in_pyproject():
    declared = set(declared_extras())
    for extras in (MAC, LINUX, "vllm,mlx,dev"):
        assert set(extras.split(",")) <= declared, extras


@pytest.mark.parametrize("model", ["examples/mlx-tiny.yaml", "examples/cpu-tiny.yaml"])
def test_platform_default_models_exist_with_their_engine(model):
    spec = yaml.safe_load((ROOT / model).read_text())["spec"]
    expected = "mlx" if "mlx" in model else "vllm"
    assert spec["engine"] == expected
    assert spec["model"]["uri"] == "builtin://tiny-llama"


@pytest.mark.parametrize(
    ("os_name", "arch", "message"),
    [
        ("Darwin", "x86_64", "needs Apple silicon"),
        ("Linux", "ppc64le", "no environment for Linux ppc64le"),
        ("FreeBSD", "amd64", "no environment for FreeBSD amd64"),
    ],
)
def test_platform_choice_refuses_machines_it_has_no_environment_for(os_name, arch, message):
    choice = choose(os_name, arch)
    assert choice.returncode == 1
    assert message in choice.stderr and choice.extras == ""


def test_platform_choice_override_and_its_model():
    choice = choose("Linux", "x86_64", extras="vllm,mlx,dev")
    assert (choice.extras, choice.reason) == ("vllm,mlx,dev", "MODELGRID_EXTRAS is set")
    assert choice.model == "examples/mlx-tiny.yaml"  # no vLLM CPU build: the MLX example


@pytest.mark.parametrize(
    "bad", ["vllm]", "vllm,", "mlx dev", "dev;rm -rf ~", "--index-url=http://x", "DEV", ","]
)
def test_platform_choice_override_refuses_anything_but_a_list_of_extras(bad):
    choice = choose("Linux", "x86_64", extras=bad)
    assert choice.returncode == 2
    assert "MODELGRID_EXTRAS" in choice.stderr and choice.extras == ""


def test_platform_choice_refuses_an_unknown_gpu_word():
    choice = choose("Linux", "x86_64", gpu="amd")
    assert choice.returncode == 2 and "MODELGRID_PLATFORM_GPU=amd" in choice.stderr


def _make_n_up(*args: str, **env: str) -> str:
    make = shutil.which("make")
    assert make is not None, "make is needed (the README's two commands are make targets)"
    environ = {k: v for k, v in os.environ.items() if k not in {"MODEL", "MODELGRID_EXTRAS"}}
    result = subprocess.run(
        [make, "-n", "--no-print-directory", "up", *args],
        capture_output=True, text=True, check=False, timeout=30, env={**environ, **env}, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_up_serves_the_platform_default_model():
    mac = _make_n_up(MODELGRID_PLATFORM_OS="Darwin", MODELGRID_PLATFORM_ARCH="arm64")
    linux = _make_n_up(MODELGRID_PLATFORM_OS="Linux", MODELGRID_PLATFORM_ARCH="aarch64")
    assert mac.rstrip().endswith(" up examples/mlx-tiny.yaml"), mac
    assert linux.rstrip().endswith(" up examples/cpu-tiny.yaml"), linux


def test_make_up_model_given_wins_over_the_default():
    given = _make_n_up("MODEL=examples/mixed-tiny.yaml", MODELGRID_PLATFORM_OS="Darwin",
                       MODELGRID_PLATFORM_ARCH="arm64")
    assert given.rstrip().endswith(" up examples/mixed-tiny.yaml"), given
    from_env = _make_n_up(MODEL="examples/nvidia-tp.yaml")
    assert from_env.rstrip().endswith(" up examples/nvidia-tp.yaml"), from_env


@pytest.mark.parametrize("script", ["platform.sh", "venv.sh"])
def test_platform_scripts_parse_with_bash_n(script):
    result = subprocess.run(["bash", "-n", str(ROOT / ".ci" / script)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", ["platform.sh", "venv.sh"])
def test_platform_scripts_pass_shellcheck(script):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); bash -n still ran")
    result = subprocess.run([shellcheck, "--severity=style", str(ROOT / ".ci" / script)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_platform_sh_is_executable():
    assert os.access(PLATFORM_SH, os.X_OK)  # the Makefile runs it directly
