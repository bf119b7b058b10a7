"""Finding a run's processes by the marker in their environment (``/proc`` laid out in a
folder: no process is started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from modelgrid_serving import marked_processes

pytestmark = pytest.mark.unit


def _process(proc: Path, pid: int, environ: list[str], state: str = "S") -> None:
    folder = proc / str(pid)
    folder.mkdir()
    (folder / "environ").write_bytes(b"\0".join(v.encode() for v in environ) + b"\0")
    (folder / "stat").write_text(f"{pid} (python3 (x)) {state} 1 2 3")


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(marked_processes, "PROC", tmp_path)
    return tmp_path


def test_marked_pids_are_those_whose_environment_has_the_marker(proc: Path) -> None:
    _process(proc, 101, ["PATH=/bin", "RUN=a1"])
    _process(proc, 102, ["RUN=a12"])  # another run whose marker starts the same
    _process(proc, 103, ["OTHER=a1"])
    _process(proc, os.getpid(), ["RUN=a1"])  # the caller itself is never one
    (proc / "self").mkdir()
    (proc / "104").mkdir()  # its environ unreadable (gone meanwhile)
    assert marked_processes.marked_pids("RUN", "a1") == [101]


def test_nothing_is_marked_without_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(marked_processes, "PROC", tmp_path / "absent")
    assert marked_processes.marked_pids("RUN", "a1") == []


def test_a_zombie_or_a_gone_process_is_not_alive(proc: Path) -> None:
    _process(proc, 201, [], state="S")
    _process(proc, 202, [], state="Z")
    assert marked_processes.alive(201)
    assert not marked_processes.alive(202)
    assert not marked_processes.alive(203)
