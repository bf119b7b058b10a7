"""vLLM (CPU build) vs MLX (``mlx[cpu]``) on the same tiny model, through the same Serve replica code.

Starts, one engine at a time, ``python -m modelgrid_serving.local`` with a one-pool LocalRun:
a ``cpu`` pool running vLLM inside the replica, then an ``apple`` pool whose replica talks to an
MLX generation server that local mode starts as its sidecar. Both answer on the replica's own port
(direct ingress, as ``modelgrid up`` serves). Load: streamed chat completions with a fixed output
length (``ignore_eos``) and no seed;
output tokens/s over the wall time and time to first token (p50/p99 over all requests).

    python bench/engines.py                      # concurrency 1, 8, 32; 128 tokens per request
    python bench/engines.py --tokens 64 --rounds 2

Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from bench_support import (
    Result,
    add_load_options,
    app_config,
    free_port,
    prepare,
    run_level,
    start_local,
    stop,
    wait_ready,
)

ENGINES = ("vllm", "mlx")


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
    add_load_options(parser)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    model_dir, work = prepare(args, "engines")
    results: dict[str, dict[int, Result]] = {}
    for engine in ENGINES:  # one engine at a time: an idle engine still takes CPU
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = work / f"{engine}.log"
        proc = start_local(app_config(engine, model_dir), port, work, log)
        try:
            waited = wait_ready(proc, url, log)
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
