"""Print the third-party requirements of modelgrid's extras, one per line, from pyproject.toml.

The image builds install these before modelgrid itself (``pip install --no-deps`` of its wheel),
so the layer that downloads torch, Ray and vLLM depends on ``pyproject.toml`` alone and is reused
from the build cache while only the code changes. Extras that name other extras
(``modelgrid[operator,gateway]``) are expanded here, so the list holds no ``modelgrid`` itself.

    python3 images/requirements.py pyproject.toml operator gateway
    python3 images/requirements.py --no-core pyproject.toml mlx    (the extra's own, no core)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SELF = re.compile(r"^modelgrid\[([^\]]+)\]\s*$")


def requirements(pyproject: dict, extras: list[str], *, core: bool = True) -> list[str]:
    """The core dependencies (unless ``core`` is false) plus those of ``extras`` (and of the
    extras they name), in order, each once.

    Raises:
        KeyError: an extra pyproject.toml does not define, named in the message.
    """
    project = pyproject["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[str] = []
    seen_extras: set[str] = set()

    def add(requirement: str) -> None:
        named = SELF.match(requirement)
        if named:
            for extra in named[1].split(","):
                expand(extra.strip())
        elif requirement not in found:
            found.append(requirement)

    def expand(extra: str) -> None:
        if extra in seen_extras:
            return
        if extra not in optional:
            raise KeyError(f"pyproject.toml defines no extra {extra!r} (it has {sorted(optional)})")
        seen_extras.add(extra)
        for requirement in optional[extra]:
            add(requirement)

    for requirement in project.get("dependencies", []) if core else []:
        add(requirement)
    for extra in extras:
        expand(extra)
    return found


def main(argv: list[str]) -> int:
    core = "--no-core" not in argv
    argv = [arg for arg in argv if arg != "--no-core"]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    pyproject = tomllib.loads(Path(argv[0]).read_text())
    try:
        lines = requirements(pyproject, argv[1:], core=core)
    except KeyError as exc:
        print(f"requirements: {exc.args[0]}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
