"""KubeRay's own CRDs, read from ``../shared/kuberay-crds`` beside the repository.

They are test data, not part of the project (a cluster gets them from the KubeRay install);
tests that need them skip, naming the missing folder, where they are absent.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY_CRDS = ROOT.parent / "shared" / "kuberay-crds"
RAYSERVICES = "ray.io_rayservices.yaml"
RAYCLUSTERS = "ray.io_rayclusters.yaml"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    return yaml.load((KUBERAY_CRDS / name).read_text(), Loader=_Loader)  # noqa: S506 (safe)


def kuberay_crd(name: str) -> dict[str, Any]:
    """One KubeRay CRD (cached: they are large), or skip the test when the folder is absent.

    Callers must not change the returned object.
    """
    if not (KUBERAY_CRDS / name).is_file():
        pytest.skip(f"KubeRay CRDs not found: ../shared/kuberay-crds/{name} is missing "
                    "(the folder beside the repository root)")
    return _load(name)


def kuberay_crds_line() -> tuple[int, int]:
    """The KubeRay minor line (``(1, 7)``) whose CRDs the folder holds, as its README names
    it (the first ``vX.Y.Z`` there), or skip the test when the folder is absent."""
    readme = KUBERAY_CRDS / "README.md"
    if not readme.is_file():
        pytest.skip("KubeRay CRDs not found: ../shared/kuberay-crds/README.md is missing")
    found = re.search(r"\bv(\d+)\.(\d+)\.\d+", readme.read_text())
    assert found, f"{readme} names no KubeRay version (vX.Y.Z)"
    return int(found[1]), int(found[2])
