"""The init container that writes ``builtin://tiny-llama`` in a cluster pod, run as rendered.

Its command must need only what every serving image holds: ``modelgrid_serving`` (and torch),
not the operator's ``modelgrid`` command. So the rendered command runs here with the serving
package alone on the path, into the volume path the renderer mounts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from factories import make_model, pool
from modelgrid_operator.settings import RenderSettings
from rendered import pool_rayservice

pytestmark = pytest.mark.integration

SERVING = Path(__file__).resolve().parents[3] / "serving"


def test_rendered_init_container_command_writes_the_model_with_the_serving_package_alone(
    tmp_path: Path,
) -> None:
    settings = RenderSettings(model_cache_path=str(tmp_path))
    model = make_model(model={"uri": "builtin://tiny-llama"}, pools=[pool("cpu", "cpu")])
    group = pool_rayservice(model, settings=settings)["spec"]["rayClusterConfig"][
        "workerGroupSpecs"
    ][0]
    (init,) = group["template"]["spec"]["initContainers"]
    program, *args = init["command"]
    assert program == "python"
    env = {**os.environ, "PYTHONPATH": str(SERVING), "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    target = Path(args[-1])
    assert target.is_relative_to(tmp_path)
    assert result.stdout.strip() == str(target)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (target / name).is_file(), name
    assert "chat_template" in json.loads((target / "tokenizer_config.json").read_text())


def test_tiny_model_command_without_a_directory_fails_with_usage() -> None:
    env = {**os.environ, "PYTHONPATH": str(SERVING)}
    result = subprocess.run(
        [sys.executable, "-m", "modelgrid_serving.tiny_model"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "usage: python -m modelgrid_serving.tiny_model" in result.stderr
    assert "dir" in result.stderr
