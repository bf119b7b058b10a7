"""modelgrid's images as the tests see them: the targets of ``images/Dockerfile``, the images the
release workflow publishes and the local names ``.ci/images.sh`` builds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "images" / "Dockerfile"
IMAGES_SH = ROOT / ".ci" / "images.sh"

RELEASE = ROOT / ".github" / "workflows" / "release.yml"


def dockerfiles() -> list[Path]:
    """Every Dockerfile of the project (``Dockerfile`` or ``*.Dockerfile``), outside caches."""
    found = [*ROOT.rglob("Dockerfile"), *ROOT.rglob("*.Dockerfile")]
    return sorted(p for p in found if not ({".git", ".venv", "build"} & set(p.parts)))


@dataclass(frozen=True)
class Stage:
    """One ``FROM ... AS name`` stage of a Dockerfile, with its instructions (continuations
    joined, comments dropped)."""

    name: str
    base: str
    instructions: tuple[str, ...]

    def last(self, keyword: str) -> str | None:
        """The argument of the stage's last ``keyword`` instruction (``USER``, ``CMD``...)."""
        args = [i.split(None, 1)[1] for i in self.instructions if i.split()[0] == keyword]
        return args[-1] if args else None


def stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """The named stages of ``path``, in order."""
    text = path.read_text().replace("\\\n", " ")  # join continued lines
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    found: dict[str, Stage] = {}
    name = None
    for line in lines:
        match = re.fullmatch(r"FROM (\S+) AS (\S+)", line)
        if match:
            name = match[2]
            found[name] = Stage(name, match[1], ())
        elif name is not None:
            found[name] = Stage(name, found[name].base, (*found[name].instructions, line))
    return found


def build_args(path: Path = DOCKERFILE) -> dict[str, str]:
    """The global ``ARG name=default`` lines (before the first ``FROM``)."""
    head = path.read_text().split("\nFROM ", 1)[0]
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", head, re.MULTILINE))


@dataclass(frozen=True)
class Published:
    """One image the release workflow builds and pushes."""

    target: str
    reference: str
    platforms: tuple[str, ...]


def published(version: str) -> list[Published]:
    """What ``release.yml`` pushes for ``version``: its matrix, resolved as its IMAGE does."""
    workflow = yaml.safe_load(RELEASE.read_text())
    registry = workflow["env"]["REGISTRY"]
    job = workflow["jobs"]["images"]
    assert job["env"]["IMAGE"] == (
        "${{ format('{0}:{1}{2}', matrix.image, needs.version.outputs.version, matrix.suffix) }}"
    ), "release.yml names its images another way: update published()"
    return [
        Published(
            target=entry["target"],
            reference=f"{registry}/{entry['image']}:{version}{entry['suffix']}",
            platforms=tuple(entry["platforms"].split(",")),
        )
        for entry in job["strategy"]["matrix"]["include"]
    ]


def local_name(target: str) -> str:
    """The name ``.ci/images.sh build`` gives ``target`` (it fails for an unknown one)."""
    script = IMAGES_SH.read_text()
    match = re.search(rf"^\s*{re.escape(target)}\) echo \"([^\"]+)\" ;;$", script, re.MULTILINE)
    assert match, f".ci/images.sh names no image for {target}"
    return match[1]
