"""images/Dockerfile and every other Dockerfile: hadolint (pinned) finds nothing outside the
justified ignore list, and the published images keep the promises images/README.md makes (a
digest-pinned base, uid 10001, no build tools in a final stage, OCI labels, a small context)."""

from __future__ import annotations

import re

import pytest
import yaml
from images_support import (
    DOCKERFILE,
    ROOT,
    Stage,
    build_args,
    dockerfiles,
    stages,
)
from pinned_tools import pinned_tool, run_tool

pytestmark = pytest.mark.unit

HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
FINAL = ("modelgrid", "serving-cpu", "serving-apple", "mlx-server", "serving-cuda")
BUILD_TOOLS = {"gcc", "g++", "make", "build-essential", "binutils", "python3-dev", "git", "cmake"}
RUNTIME_BUILD_TOOLS = {"serving-cpu": {"g++", "python3-dev"}}
"""vLLM's CPU build compiles its model with torch.compile when the engine starts (TorchInductor
builds C++ kernels against Python's headers): the one justified run-time need."""


@pytest.fixture(scope="module")
def hadolint():
    return pinned_tool("hadolint")


def _lint(hadolint, *paths):
    return run_tool(hadolint, "--no-color", "--config", HADOLINT_CONFIG, *paths)


def test_dockerfiles_pass_hadolint(hadolint):
    paths = dockerfiles()
    assert DOCKERFILE in paths
    result = _lint(hadolint, *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfiles_hadolint_catches_what_the_config_does_not_ignore(hadolint, tmp_path):
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = _lint(hadolint, broken)
    assert result.returncode == 1
    for rule in ("DL3007", "DL3015", "DL3009"):
        assert rule in result.stdout, result.stdout


def test_dockerfiles_every_ignored_rule_says_why():
    text = HADOLINT_CONFIG.read_text()
    ignored = yaml.safe_load(text)["ignored"]
    assert ignored == sorted(set(ignored))
    for rule in ignored:
        before = text.split(f"  - {rule}\n")[0].splitlines()
        assert before[-1].lstrip().startswith("#"), f"{rule} is ignored without a reason"


def test_dockerfile_base_is_debian_slim_pinned_by_digest():
    assert re.fullmatch(r"debian:bookworm-slim@sha256:[0-9a-f]{64}", build_args()["BASE"])
    assert stages()["python"].base == "${BASE}"


def test_dockerfile_final_stages_run_as_the_pods_user():
    from modelgrid_operator.settings import RenderSettings

    chart = yaml.safe_load((ROOT / "charts/modelgrid/values.yaml").read_text())
    settings = RenderSettings()
    uid = chart["podSecurityContext"]["runAsUser"]
    assert uid == settings.run_as_user == chart["podSecurityContext"]["runAsGroup"] > 10000
    for target in FINAL:
        assert stages()[target].last("USER") == f"{uid}:{settings.run_as_group}", target


def _apt_packages(stage) -> set[str]:
    packages: set[str] = set()
    for instruction in stage.instructions:
        for command in re.findall(r"apt-get install ([^&]*)", instruction):
            packages |= {word for word in command.split() if not word.startswith("-")}
    return packages


def _lineage(found: dict[str, Stage], target: str) -> list[Stage]:
    """The stage and every stage of the file it extends, nearest first: a final stage holds what
    each of them installed."""
    chain = [found[target]]
    while chain[-1].base in found:
        chain.append(found[chain[-1].base])
    return chain


def test_dockerfile_final_stages_hold_no_build_tools():
    found = stages()
    for target in FINAL:
        chain = _lineage(found, target)
        assert chain[-1].base in {"${BASE}", "${CUDA_BASE}"}, target
        assert "builder" not in {s.name for s in chain}, f"{target} must not extend a builder"
        tools = set().union(*map(_apt_packages, chain)) & BUILD_TOOLS
        assert tools == RUNTIME_BUILD_TOOLS.get(target, set()), (target, tools)
    assert "binutils" in _apt_packages(found["build-modelgrid"])  # strip, in the builder only


def test_dockerfile_final_stages_carry_oci_labels():
    found = stages()
    for target in FINAL:
        instructions = [i for stage in _lineage(found, target) for i in stage.instructions]
        labels = " ".join(i for i in instructions if i.startswith("LABEL "))
        for key in ("title", "description", "licenses", "vendor"):
            assert f"org.opencontainers.image.{key}=" in labels, (target, key)


def test_dockerfile_copies_only_what_dockerignore_lets_in():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    first_allowed = next(i for i, line in enumerate(lines) if line.startswith("!"))
    assert "*" in lines[:first_allowed]  # everything is left out unless let in by name
    copied = set()
    for stage in stages().values():
        for instruction in stage.instructions:
            words = instruction.split()
            if words[0] == "COPY" and not words[1].startswith("--from"):
                copied |= {w.rstrip("/") for w in words[1:-1]}
    assert copied and copied <= allowed, copied - allowed
    for path in copied:
        assert (ROOT / path).exists(), path
