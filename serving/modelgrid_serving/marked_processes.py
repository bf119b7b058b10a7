"""Processes found by a marker in their environment, read from ``/proc``.

A local run puts a marker variable in its environment, so every process it starts (Ray's
workers, the engines, their children, however deep and whoever reparents them) inherits it:
the one way to find all of them again when the run ends, without a process group that Ray and
vLLM would leave. Linux only: elsewhere nothing is found, and Ray's own shutdown is all there is.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def marked_pids(variable: str, value: str) -> list[int]:
    """The processes (not this one) whose environment has ``variable=value``."""
    if not PROC.is_dir():
        return []
    needle = f"{variable}={value}".encode()
    me = os.getpid()
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
