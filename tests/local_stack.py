"""The local stack the integration tiers share: ``modelgrid_serving.local`` in a subprocess.

Embedded Ray, the Serve application and a real engine on the tiny model: vLLM (CPU build), or
MLX (``mlx[cpu]``, the MLX generation server that local mode starts as the replica's sidecar). Starting
vLLM takes 30-70 s on two cores (MLX a few seconds), so a test session starts each kind of stack
once (the fixtures are in ``tests/conftest.py``) and runs one at a time. Every process a stack
starts inherits a marker in its environment; stopping a stack SIGTERMs it and reports any marked
process left.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from modelgrid_serving.marked_processes import alive, marked_pids
from polling import wait_for

MODEL = "tiny"
ALIAS = "tiny-chat"
MAX_MODEL_LEN = 512
EMBED_MODEL = "tiny-embed"
START_DEADLINE_S = 300.0
STOP_DEADLINE_S = 60.0
_MARKER_ENV = "MODELGRID_TEST_STACK"


@dataclass(frozen=True)
class Stack:
    """A running local stack."""

    url: str
    """Base URL, no trailing slash."""
    model: str
    alias: str
    max_model_len: int
    log: Path
    proxy_url: str
    """The same application through the Serve proxy (the path a cluster uses)."""
    engine: str = "vllm"
    """The engine behind the replica: "vllm" or "mlx"."""

    def client(self) -> openai.OpenAI:
        """An OpenAI SDK client of the stack (close it: ``with stack.client() as client``)."""
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, timeout=60)


def cache_dir() -> Path:
    """Where generated models live between sessions (``MODELGRID_CACHE_DIR`` overrides)."""
    default = Path.home() / ".cache" / "modelgrid"
    return Path(os.environ.get("MODELGRID_CACHE_DIR", default))


def tiny_model_dir() -> Path:
    """The tiny model, generated once and cached under a hash of its generator's source."""
    from modelgrid_serving import tiny_model as generator

    digest = hashlib.sha256(inspect.getsource(generator).encode()).hexdigest()[:12]
    return generator.write_tiny_model(cache_dir() / f"tiny-model-{digest}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def offline_engine_env(caches: Path) -> dict[str, str]:
    """An engine's environment here and in ``bench/``: offline, no usage stats, 1 GiB of KV
    cache, vLLM's and torch's compile caches under ``caches``."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(caches / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"),
    }


def engine_env(marker: str) -> dict[str, str]:
    """The environment of a stack: the engine's, with caches shared between sessions, and the
    marker that finds every process it starts."""
    return {**offline_engine_env(cache_dir()), _MARKER_ENV: marker}


def stack_pids(marker: str) -> list[int]:
    """The processes of the stack ``marker`` names (see :func:`engine_env`)."""
    return marked_pids(_MARKER_ENV, marker)


CHAT_CONFIG: dict[str, Any] = {
    "model_name": MODEL,
    "aliases": [ALIAS],
    "max_model_len": MAX_MODEL_LEN,
    "dtype": "float32",
    # Eager mode: no torch.compile, the engine is up in about half the time.
    "engine_kwargs": {"enforce_eager": True},
    # The replica reads the tiny model's chat template and picks vLLM's hermes parser.
    "tool_call_parser": "auto",
}
EMBED_CONFIG: dict[str, Any] = {
    "model_name": EMBED_MODEL,
    "max_model_len": MAX_MODEL_LEN,
    "dtype": "float32",
    # The same tiny Llama, run by vLLM as an embedding model (last-token pooling).
    "engine_kwargs": {"enforce_eager": True, "runner": "pooling", "convert": "embed"},
}
MLX_CONFIG: dict[str, Any] = {
    "model_name": MODEL,
    "aliases": [ALIAS],
    "max_model_len": MAX_MODEL_LEN,
}
LOCAL_POOL = {
    "name": "local",
    "accelerator": "cpu",
    "engine": "vllm",
    "min_replicas": 1,
    "max_replicas": 1,
}
APPLE_POOL = {**LOCAL_POOL, "accelerator": "apple", "engine": "mlx"}
"""Local mode starts the pool's MLX generation server itself (no ``mlx_server_url``)."""
MLX_POOLS = ("mac-a", "mac-b")
KINDS: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "chat": (CHAT_CONFIG, [LOCAL_POOL]),
    "embed": (EMBED_CONFIG, [LOCAL_POOL]),
    "mlx": (MLX_CONFIG, [APPLE_POOL]),
    # Several pools: one Serve application each, at /pools/<pool> (two light MLX pools).
    "mlx-pools": (MLX_CONFIG, [{**APPLE_POOL, "name": name} for name in MLX_POOLS]),
}
"""Each kind of stack: its LocalRun (less source and pools) and its pools."""


@dataclass
class _Running:
    kind: str
    proc: subprocess.Popen[bytes]
    marker: str
    log: Path
    stack: Stack


class Stacks:
    """At most one stack runs at a time (two engines on two cores would starve each other).

    Tests ask for a kind ("chat" and "embed" run vLLM, "mlx" runs MLX); a different kind stops
    the running stack first. Tests are ordered by the kind they use (see
    ``pytest_collection_modifyitems``), so each kind starts once per session.
    """

    def __init__(self, tiny_model: Path, work: Path) -> None:
        self._tiny_model = tiny_model
        self._work = work
        self._running: _Running | None = None
        self.problems: list[str] = []

    def get(self, kind: str) -> Stack:
        if self._running and self._running.kind == kind:
            return self._running.stack
        self.stop()
        self._running = self._start(kind)
        return self._running.stack

    def stop(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        leftovers = _stop(running.proc, running.marker)
        if running.proc.returncode != 0:
            self.problems.append(
                f"{running.kind} stack exited with {running.proc.returncode}; see {running.log}"
            )
        if leftovers:
            self.problems.append(f"{running.kind} stack left processes after SIGTERM: {leftovers}")

    def _start(self, kind: str) -> _Running:
        base, pools = KINDS[kind]
        config = {**base, "model_source": str(self._tiny_model), "pools": pools}
        work = self._work / kind
        work.mkdir(parents=True, exist_ok=True)
        config_path = work / "app.json"
        config_path.write_text(json.dumps(config))
        port = free_port()
        marker = uuid.uuid4().hex
        env = engine_env(marker)
        log_path = work / "stack.log"
        argv = [sys.executable, "-m", "modelgrid_serving.local", str(config_path)]
        proc = spawn([*argv, "--port", str(port)], log_path, env)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_started(
                proc,
                log_path,
                lambda: says_ready(log_path),
                timeout=START_DEADLINE_S,
                what=f"the stack at {url}",
            )
        except BaseException:
            _stop(proc, marker)
            raise
        stack = Stack(
            url=url,
            model=str(config["model_name"]),
            alias=ALIAS,
            max_model_len=MAX_MODEL_LEN,
            log=log_path,
            proxy_url=_proxy_url(log_path, url),
            engine=str(pools[0]["engine"]),
        )
        return _Running(kind, proc, marker, log_path, stack)


def _proxy_url(log_path: Path, url: str) -> str:
    """The Serve proxy's URL; ``url`` itself when the stack serves through the proxy (several
    pools do)."""
    match = re.search(r"Serve proxy at (http://\S+)", log_path.read_text(errors="replace"))
    return match.group(1) if match else url


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a process group of its own, both output streams into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def wait_started(
    proc: subprocess.Popen[bytes],
    log: Path,
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
) -> None:
    """Wait until ``ready()``; fail with the tail of ``log`` if the process exits first."""

    def check() -> bool:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"{what} exited with {proc.returncode} before ready:\n{tail}")
        return ready()

    wait_for(check, timeout=timeout, what=f"{what} (log: {log})")


def says_ready(log: Path) -> bool:
    """Local mode (``modelgrid up`` too) has written that it serves."""
    return b"[modelgrid] ready:" in log.read_bytes()


def _stop(proc: subprocess.Popen[bytes], marker: str) -> list[int]:
    """SIGTERM the stack, wait, then end (and report) whatever still carries the marker."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    left = [p for p in stack_pids(marker) if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in left if alive(p)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


@contextmanager
def throttled(pid: int, *, run_s: float = 0.01, period_s: float = 0.1) -> Iterator[None]:
    """Let process ``pid`` run ``run_s`` out of every ``period_s`` while the context lasts (as
    ``cpulimit`` does, with SIGSTOP and SIGCONT): a slow engine, without telling anyone."""
    stop = threading.Event()

    def cycle() -> None:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            time.sleep(period_s - run_s)
            os.kill(pid, signal.SIGCONT)
            time.sleep(run_s)

    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        os.kill(pid, signal.SIGCONT)
