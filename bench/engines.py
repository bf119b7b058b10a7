"""vLLM (CPU build) vs MLX (``mlx[cpu]``) on the same tiny model, through the same Serve replica code.

Starts, one engine at a time, ``python -m modelgrid_serving.local`` with a one-pool LocalRun:
a ``cpu`` pool running vLLM inside the replica, then an ``apple`` pool whose replica talks to an
mlx-lm server that local mode starts as its sidecar. Both answer on the replica's own port
(direct ingress, as ``modelgrid up`` serves). Load: streamed chat completions with a fixed output
length (``ignore_eos``) and no seed (a seeded request is served alone by mlx-lm's server);
output tokens/s over the wall time and time to first token (p50/p99 over all requests).

    python bench/engines.py                      # concurrency 1, 8, 32; 128 tokens per request
    python bench/engines.py --tokens 64 --rounds 2

Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from serving import (  # bench/serving.py
    MODEL,
    Result,
    engine_env,
    free_port,
    run_level,
    stop,
    wait_ready,
)

ENGINES = ("vllm", "mlx")


def app_config(engine: str, model_dir: Path) -> dict[str, object]:
    """The same model, limits and queueing for both engines; only the pool differs."""
    pool = {"name": "local", "min_replicas": 1, "max_replicas": 1}
    if engine == "vllm":
        pool.update(accelerator="cpu", engine="vllm")
    else:
        pool.update(accelerator="apple", engine="mlx")
    return {
        "model_name": MODEL,
        "model_source": str(model_dir),
        "max_model_len": 512,
        "dtype": "float32",
        "max_ongoing_requests": 256,
        "pools": [pool],
    }


def start(engine: str, model_dir: Path, port: int, work: Path) -> subprocess.Popen[bytes]:
    path = work / f"{engine}.json"
    path.write_text(json.dumps(app_config(engine, model_dir)))
    return subprocess.Popen(
        [sys.executable, "-m", "modelgrid_serving.local", str(path), "--port", str(port)],
        stdout=(work / f"{engine}.log").open("wb"),
        stderr=subprocess.STDOUT,
        env=engine_env(work),
        start_new_session=True,
    )


def table(results: dict[str, dict[int, Result]]) -> str:
    head = [
        "concurrency", "vLLM-CPU tok/s", "MLX-CPU tok/s", "MLX / vLLM",
        "TTFT p50 vLLM (ms)", "TTFT p50 MLX (ms)", "TTFT p99 vLLM (ms)", "TTFT p99 MLX (ms)",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for c, v in results["vllm"].items():
        m = results["mlx"][c]
        row = [
            str(c), f"{v.tok_per_s:.0f}", f"{m.tok_per_s:.0f}", f"{m.tok_per_s / v.tok_per_s:.2f}x",
            f"{v.ttft_ms(0.5):.1f}", f"{m.ttft_ms(0.5):.1f}",
            f"{v.ttft_ms(0.99):.1f}", f"{m.ttft_ms(0.99):.1f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels (1,8,32)")
    parser.add_argument("--tokens", type=int, default=128, help="output tokens per request (128)")
    parser.add_argument(
        "--rounds", type=int, default=4, help="requests per level = rounds x concurrency (min 16)"
    )
    parser.add_argument("--model-dir", type=Path, help="tiny model dir (default: generated)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    from modelgrid_serving.tiny_model import write_tiny_model

    cache = Path(os.environ.get("MODELGRID_CACHE_DIR", Path.home() / ".cache" / "modelgrid"))
    model_dir = write_tiny_model(args.model_dir or cache / "tiny-model-bench")
    work = Path(tempfile.mkdtemp(prefix="modelgrid-bench-engines-"))
    print(f"model {model_dir}; logs in {work}; {os.cpu_count()} CPUs", flush=True)
    results: dict[str, dict[int, Result]] = {}
    for engine in ENGINES:  # one engine at a time: an idle engine still takes CPU
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start(engine, model_dir, port, work)
        try:
            waited = wait_ready(proc, url, work / f"{engine}.log")
            print(f"{engine}: ready in {waited:.0f} s", flush=True)
            asyncio.run(run_level(url, 4, 8, args.tokens, seed=False))  # warm-up
            results[engine] = {}
            for c in levels:
                load = os.getloadavg()[0]
                r = asyncio.run(
                    run_level(url, c, max(c * args.rounds, 16), args.tokens, seed=False)
                )
                results[engine][c] = r
                print(
                    f"  {engine:<5} c={c:<3} {r.tok_per_s:8.0f} tok/s  TTFT p50 "
                    f"{r.ttft_ms(0.5):7.1f} ms  p99 {r.ttft_ms(0.99):7.1f} ms  "
                    f"({r.requests} requests; load average before {load:.1f})",
                    flush=True,
                )
        finally:
            stop(proc)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
