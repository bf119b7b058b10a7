"""What the engine benchmarks share (``bench/serving.py``, ``bench/engines.py``): the tiny
model and a work folder, local mode started in a process group of its own, a wait for a real
chat completion, the streamed load and its figures.

The engine's environment and free ports are the ones the integration tests' local stacks use.

Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from local_stack import free_port, offline_engine_env, spawn

__all__ = [
    "MODEL",
    "Result",
    "add_load_options",
    "app_config",
    "free_port",
    "merge",
    "one_request",
    "prepare",
    "run_level",
    "start_engine",
    "start_local",
    "stop",
    "wait_ready",
]

MODEL = "tiny"


@dataclass
class Result:
    concurrency: int
    requests: int
    output_tokens: int
    wall_s: float
    ttft_s: list[float]

    @property
    def tok_per_s(self) -> float:
        return self.output_tokens / self.wall_s

    def ttft_ms(self, q: float) -> float:
        ordered = sorted(self.ttft_s)
        return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The options of a load run: levels, tokens per request, rounds, and the model folder."""
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels (1,8,32)")
    parser.add_argument("--tokens", type=int, default=128, help="output tokens per request (128)")
    parser.add_argument(
        "--rounds", type=int, default=4, help="requests per level = rounds x concurrency (min 16)"
    )
    parser.add_argument(
        "--model-dir", type=Path, help="tiny model dir (default: generated, cached)"
    )


def prepare(args: argparse.Namespace, name: str) -> tuple[Path, Path]:
    """The tiny model (``--model-dir`` or the cached one) and a fresh work folder for the logs;
    says where both are."""
    from modelgrid_serving.tiny_model import write_tiny_model

    cache = Path(os.environ.get("MODELGRID_CACHE_DIR", Path.home() / ".cache" / "modelgrid"))
    model_dir = write_tiny_model(args.model_dir or cache / "tiny-model-bench")
    work = Path(tempfile.mkdtemp(prefix=f"modelgrid-bench-{name}-"))
    print(f"model {model_dir}; logs in {work}; {os.cpu_count()} CPUs", flush=True)
    return model_dir, work


def app_config(engine: str, model_dir: Path, **overrides: object) -> dict[str, object]:
    """A LocalRun of the tiny model in one pool ``local`` on ``engine`` ("vllm" on a cpu
    pool, "mlx" on an apple one); the same model, limits and queueing for every engine."""
    accelerator = "cpu" if engine == "vllm" else "apple"
    pool = {"name": "local", "accelerator": accelerator, "engine": engine}
    return {
        "model_name": MODEL,
        "model_source": str(model_dir),
        "max_model_len": 512,
        "dtype": "float32",
        "max_ongoing_requests": 256,
        "pools": [{**pool, "min_replicas": 1, "max_replicas": 1}],
        **overrides,
    }


def start_local(
    config: dict[str, object], port: int, work: Path, log: Path
) -> subprocess.Popen[bytes]:
    """``python -m modelgrid_serving.local`` of ``config`` on ``port``, output to ``log``."""
    path = work / f"app-{port}.json"
    path.write_text(json.dumps(config))
    return start_engine(
        [sys.executable, "-m", "modelgrid_serving.local", str(path), "--port", str(port)],
        work,
        log,
    )


def start_engine(cmd: list[str], work: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a server in a process group of its own (:func:`stop` ends the whole group), with
    the engine's environment (its compile caches under ``work``)."""
    return spawn(cmd, log, offline_engine_env(work))


def wait_ready(
    proc: subprocess.Popen[bytes], url: str, log: Path, deadline_s: float = 600
) -> float:
    """Poll a real chat completion until it answers 200; return seconds waited."""
    t0 = time.monotonic()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    while time.monotonic() - t0 < deadline_s:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}; see {log}")
        try:
            if httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"server not ready in {deadline_s:.0f} s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


async def one_request(
    client: httpx.AsyncClient, i: int, tokens: int, *, seed: bool = True
) -> tuple[float, int]:
    """One streamed chat completion of ``tokens`` tokens; returns (TTFT seconds, tokens).

    ``seed``: send ``seed: i`` (mlx-lm's server serves a seeded request alone, outside its
    batch, so the engines comparison sends none)."""
    body: dict[str, object] = {
        "model": MODEL,
        "stream": True,
        "max_tokens": tokens,
        "ignore_eos": True,
        "temperature": 0.8,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": f"count to ten, request {i}"}],
    }
    if seed:
        body["seed"] = i
    t0 = time.perf_counter()
    ttft = None
    usage = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            if ttft is None and '"content"' in line:
                ttft = time.perf_counter() - t0
            if '"usage"' in line and '"choices":[]' in line:
                usage = json.loads(line[6:])["usage"]["completion_tokens"]
    return (ttft if ttft is not None else time.perf_counter() - t0), usage


async def run_level(
    url: str, concurrency: int, requests: int, tokens: int, *, seed: bool = True
) -> Result:
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)
        results: list[tuple[float, int]] = []

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                results.append(await one_request(client, i, tokens, seed=seed))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return Result(concurrency, requests, sum(u for _, u in results), wall, [t for t, _ in results])


def merge(results: list[Result]) -> Result:
    """Rounds of one level: median throughput, TTFT pooled over every request."""
    by_rate = sorted(results, key=lambda r: r.tok_per_s)
    mid = by_rate[len(by_rate) // 2]
    ttft = [t for r in results for t in r.ttft_s]
    return Result(
        mid.concurrency, sum(r.requests for r in results), mid.output_tokens, mid.wall_s, ttft
    )
