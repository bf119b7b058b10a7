"""Ray Serve path vs bare vLLM, on the same tiny model and machine, in one run.

Starts, one at a time, the modelgrid stack (``python -m modelgrid_serving.local``: embedded Ray,
our Serve application, vLLM inside the replica; measured both on its direct-ingress port, as
``modelgrid up`` serves, and through the Serve proxy, the default path in a cluster) and vLLM's
own OpenAI server (``python -m vllm.entrypoints.openai.api_server``) with the same engine
arguments; with ``--with-mp-executor`` also the modelgrid stack on vLLM's multiprocessing
executor, to A/B the one-process CPU engine (docs/serving.md). Only one server is up at a time
(an idle engine still takes CPU); each pass starts, measures and stops each, and passes
alternate the order, so background noise falls on all alike.
Load: streamed chat completions with a fixed output length (``ignore_eos``); output tokens/s
over the wall time (median of the rounds) and time to first token (p50/p99 over all requests).

    python bench/serving.py                      # concurrency 1, 8, 32; 128 tokens per request
    python bench/serving.py --eager --tokens 64  # faster start, shorter requests

Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MODEL = "tiny"
MP_EXECUTOR = "modelgrid, vLLM mp executor"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(work / "vllm-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor-cache"),
    }


def start_modelgrid(
    model_dir: Path,
    port: int,
    work: Path,
    eager: bool,
    log: Path,
    engine_kwargs: dict[str, object] | None = None,
) -> subprocess.Popen[bytes]:
    config = {
        "model_name": MODEL,
        "model_source": str(model_dir),
        "max_model_len": 512,
        "dtype": "float32",
        "engine_kwargs": {**({"enforce_eager": True} if eager else {}), **(engine_kwargs or {})},
        "max_ongoing_requests": 256,
        "pools": [
            {
                "name": "local",
                "accelerator": "cpu",
                "engine": "vllm",
                "min_replicas": 1,
                "max_replicas": 1,
            }
        ],
    }
    path = work / f"app-{port}.json"
    path.write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "modelgrid_serving.local", str(path), "--port", str(port)]
    return subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=engine_env(work),
        start_new_session=True,
    )


def start_vllm(
    model_dir: Path, port: int, work: Path, eager: bool, log: Path
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        MODEL,
        "--dtype",
        "float32",
        "--max-model-len",
        "512",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if eager:
        cmd.append("--enforce-eager")
    return subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=engine_env(work),
        start_new_session=True,
    )


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


def proxy_url(log: Path, deadline_s: float = 60) -> str:
    """The Serve proxy's URL, from the stack's output (the replica may answer before it prints)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        match = re.search(r"Serve proxy at (http://\S+)", log.read_text(errors="replace"))
        if match:
            return match.group(1)
        time.sleep(0.2)
    sys.exit(f"no Serve proxy URL in {log}")


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


def measure(
    urls: dict[str, str], levels: list[int], tokens: int, rounds: int, repeats: int
) -> dict[str, dict[int, Result]]:
    for url in urls.values():
        asyncio.run(run_level(url, 4, 8, tokens))  # warm-up: compile paths, fill caches
    out: dict[str, dict[int, Result]] = {name: {} for name in urls}
    for c in levels:
        rounds_of: dict[str, list[Result]] = {name: [] for name in urls}
        for rep in range(repeats):
            order = list(urls) if rep % 2 == 0 else list(reversed(urls))
            for name in order:
                rounds_of[name].append(
                    asyncio.run(run_level(urls[name], c, max(c * rounds, 16), tokens))
                )
        for name in urls:
            r = out[name][c] = merge(rounds_of[name])
            print(
                f"  {name:<10} c={c:<3} {r.tok_per_s:8.0f} tok/s  TTFT p50 "
                f"{r.ttft_ms(0.5):7.1f} ms  p99 {r.ttft_ms(0.99):7.1f} ms  "
                f"({r.requests} requests)",
                flush=True,
            )
    return out


def table(results: dict[str, dict[int, Result]], baseline: str) -> str:
    """One row per concurrency; each server's tok/s, ratio to the baseline and TTFT."""
    names = [n for n in results if n != baseline]
    head = ["concurrency", f"{baseline} tok/s"]
    for n in names:
        head += [f"{n} tok/s", f"{n} / {baseline}"]
    head += [f"TTFT p50 {baseline} (ms)"]
    for n in names:
        head += [f"TTFT p50 {n} (ms)", f"TTFT p99 {n} (ms)"]
    head += [f"TTFT p99 {baseline} (ms)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for c, base in results[baseline].items():
        row = [str(c), f"{base.tok_per_s:.0f}"]
        for n in names:
            r = results[n][c]
            row += [f"{r.tok_per_s:.0f}", f"{r.tok_per_s / base.tok_per_s:.2f}x"]
        row += [f"{base.ttft_ms(0.5):.1f}"]
        for n in names:
            r = results[n][c]
            row += [
                f"{r.ttft_ms(0.5):.1f} ({r.ttft_ms(0.5) - base.ttft_ms(0.5):+.1f})",
                f"{r.ttft_ms(0.99):.1f}",
            ]
        row += [f"{base.ttft_ms(0.99):.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels (1,8,32)")
    parser.add_argument("--tokens", type=int, default=128, help="output tokens per request (128)")
    parser.add_argument(
        "--rounds", type=int, default=4, help="requests per level = rounds x concurrency"
    )
    parser.add_argument("--repeats", type=int, default=2, help="rounds per level and pass")
    parser.add_argument(
        "--passes", type=int, default=2, help="start-measure-stop passes per server (2)"
    )
    parser.add_argument(
        "--no-proxy",
        dest="proxy",
        action="store_false",
        help="skip measuring the Serve proxy path of the modelgrid stack",
    )
    parser.add_argument("--eager", action="store_true", help="both servers with --enforce-eager")
    parser.add_argument(
        "--model-dir", type=Path, help="tiny model dir (default: generated, cached)"
    )
    parser.add_argument(
        "--with-mp-executor",
        action="store_true",
        help="also the modelgrid stack on vLLM's multiprocessing executor (a model worker "
        "process beside the engine process, as bare vLLM on the CPU), to A/B the one-process "
        "engine",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    from modelgrid_serving.tiny_model import write_tiny_model

    cache = Path(os.environ.get("MODELGRID_CACHE_DIR", Path.home() / ".cache" / "modelgrid"))
    model_dir = write_tiny_model(args.model_dir or cache / "tiny-model-bench")
    work = Path(tempfile.mkdtemp(prefix="modelgrid-bench-"))
    print(f"model {model_dir}; logs in {work}; {os.cpu_count()} CPUs", flush=True)

    # One server at a time: an idle vLLM engine still takes CPU, and on a small machine two
    # engines up at once measure each other. Passes alternate which server goes first.
    starters = {"modelgrid": start_modelgrid, "bare vLLM": start_vllm}
    if args.with_mp_executor:
        starters[MP_EXECUTOR] = functools.partial(
            start_modelgrid, engine_kwargs={"distributed_executor_backend": "mp"}
        )
    per_pass: list[dict[str, dict[int, Result]]] = []
    for number in range(args.passes):
        order = list(starters) if number % 2 == 0 else list(reversed(starters))
        results_of_pass: dict[str, dict[int, Result]] = {}
        for name in order:
            port = free_port()
            log = work / f"{name.replace(' ', '-')}-{number}.log"
            proc = starters[name](model_dir, port, work, args.eager, log)
            try:
                urls = {name: f"http://127.0.0.1:{port}"}
                ready = wait_ready(proc, urls[name], log)
                print(f"pass {number + 1}: {name} ready in {ready:.0f} s", flush=True)
                if name == "modelgrid" and args.proxy:
                    # The same stack through the Serve proxy: a cluster's default path.
                    urls["modelgrid via proxy"] = proxy_url(log)
                results_of_pass.update(
                    measure(urls, levels, args.tokens, args.rounds, args.repeats)
                )
            finally:
                stop(proc)
        per_pass.append(results_of_pass)
    results = {
        name: {c: merge([p[name][c] for p in per_pass]) for c in levels} for name in per_pass[0]
    }

    print()
    print(table(results, "bare vLLM"))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    name: {
                        c: {
                            "tok_per_s": r.tok_per_s,
                            "ttft_p50_ms": r.ttft_ms(0.5),
                            "ttft_p99_ms": r.ttft_ms(0.99),
                            "requests": r.requests,
                        }
                        for c, r in res.items()
                    }
                    for name, res in results.items()
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
