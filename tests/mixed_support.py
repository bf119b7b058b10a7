"""The mixed-pools stack: ``modelgrid up examples/mixed-tiny.yaml`` in a subprocess (vLLM CPU and
MLX CPU pools, the gateway in front), and what the tests need to know of it."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
from local_stack import (
    _stop,
    engine_env,
    free_port,
    says_ready,
    spawn,
    stack_pids,
    wait_started,
)
from modelgrid_serving import mlx_sidecar

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mixed-tiny.yaml"
START_DEADLINE_S = 420.0
MODEL = "tiny-chat"
"""The served name in examples/mixed-tiny.yaml."""
POOL_LINE = re.compile(r"\[modelgrid\] pool (\S+) \((\w+)\) at (\S+)")


@dataclass(frozen=True)
class Mixed:
    """A running mixed stack."""

    url: str
    """The gateway in front: the model's name over both pools."""
    model: str
    pools: dict[str, tuple[str, str]]
    """pool -> (engine, base URL of its Serve application)."""
    mlx_pid: int
    """The MLX pool's generation server (the pool's engine)."""
    log: Path


def _mlx_server(marker: str) -> int:
    for pid in stack_pids(marker):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if mlx_sidecar.SERVER_MODULE.encode() in argv:
            return pid
    raise AssertionError("no MLX generation server among the stack's processes")


@contextmanager
def mixed_stack(work: Path) -> Iterator[Mixed]:
    """Run ``modelgrid up examples/mixed-tiny.yaml`` until the context ends; fail if it leaves
    a process behind."""
    port, marker = free_port(), uuid.uuid4().hex
    env = engine_env(marker)
    log = work / "up.log"
    argv = [sys.executable, "-m", "modelgrid_cli", "up", str(EXAMPLE), "--port", str(port)]
    proc = spawn(argv, log, env)
    try:
        wait_started(
            proc, log, lambda: says_ready(log), timeout=START_DEADLINE_S, what="modelgrid up"
        )
        text = log.read_text()
        pools = {m[0]: (m[1], m[2]) for m in POOL_LINE.findall(text)}
        yield Mixed(f"http://127.0.0.1:{port}", MODEL, pools, _mlx_server(marker), log)
    finally:
        leftovers = _stop(proc, marker)
    assert not leftovers, f"modelgrid up left processes after SIGTERM: {leftovers}"


REQUESTS, CONCURRENCY = 40, 4


def requests_per_pool(mixed: Mixed) -> dict[str, int]:
    """The gateway's own count of requests per pool (``/v1/stats``)."""
    with urllib.request.urlopen(f"{mixed.url}/v1/stats", timeout=10) as resp:
        (model,) = json.load(resp)["models"]
    return {b["backend"].split("/")[0]: b["requests"] for b in model["backends"]}


def ready_pools(mixed: Mixed) -> set[str]:
    """The pools the gateway routes to now."""
    with urllib.request.urlopen(f"{mixed.url}/v1/stats", timeout=10) as resp:
        (model,) = json.load(resp)["models"]
    return {b["backend"].split("/")[0] for b in model["backends"] if b["ready"]}


def gateway_client(mixed: Mixed) -> openai.OpenAI:
    """A client of the gateway (close it: ``with gateway_client(mixed) as client``)."""
    return openai.OpenAI(base_url=f"{mixed.url}/v1", api_key="unused", max_retries=0, timeout=60)


def burst(mixed: Mixed, n: int = REQUESTS) -> dict[str, int]:
    """``n`` chat completions, ``CONCURRENCY`` at a time; requests per pool during the burst."""
    with gateway_client(mixed) as client:

        def one(_: int) -> str:
            reply = client.chat.completions.create(
                model=mixed.model, messages=[{"role": "user", "content": "hi"}], max_tokens=16
            )
            return reply.choices[0].finish_reason

        before = requests_per_pool(mixed)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            reasons = list(pool.map(one, range(n)))
    after = requests_per_pool(mixed)
    assert len(reasons) == n
    return {name: after[name] - before.get(name, 0) for name in after}
