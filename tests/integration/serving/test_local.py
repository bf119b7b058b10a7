"""Local mode outside the shared stack: clear failures before anything heavy starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_missing_local_model_fails_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    config = {
        "model_name": "m",
        "model_source": str(missing),
        "pools": [
            {
                "name": "local",
                "accelerator": "cpu",
                "engine": "vllm",
                "min_replicas": 1,
                "max_replicas": 1,
            }
        ],
    }
    path = tmp_path / "app.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "modelgrid_serving.local", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "does not exist" in lines[0]


def test_tiny_model_is_complete_and_cached(tiny_model: Path) -> None:
    from modelgrid_serving.tiny_model import write_tiny_model

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tiny_model / name).is_file()
    config = json.loads((tiny_model / "tokenizer_config.json").read_text())
    assert "chat_template" in config
    assert sum(f.stat().st_size for f in tiny_model.iterdir()) < 5_000_000
    mtime = (tiny_model / "model.safetensors").stat().st_mtime
    assert write_tiny_model(tiny_model) == tiny_model
    assert (tiny_model / "model.safetensors").stat().st_mtime == mtime
