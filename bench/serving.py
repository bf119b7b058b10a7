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
import re
import subprocess
import sys
import time
from pathlib import Path

from bench_support import (
    MODEL,
    Result,
    add_load_options,
    app_config,
    free_port,
    merge,
    prepare,
    run_level,
    start_engine,
    start_local,
    stop,
    wait_ready,
)

MP_EXECUTOR = "modelgrid, vLLM mp executor"


def start_modelgrid(
    model_dir: Path,
    port: int,
    work: Path,
    eager: bool,
    log: Path,
    engine_kwargs: dict[str, object] | None = None,
) -> subprocess.Popen[bytes]:
    kwargs = {**({"enforce_eager": True} if eager else {}), **(engine_kwargs or {})}
    return start_local(app_config("vllm", model_dir, engine_kwargs=kwargs), port, work, log)


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
    return start_engine(cmd, work, log)


def proxy_url(log: Path, deadline_s: float = 60) -> str:
    """The Serve proxy's URL, from the stack's output (the replica may answer before it prints)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        match = re.search(r"Serve proxy at (http://\S+)", log.read_text(errors="replace"))
        if match:
            return match.group(1)
        time.sleep(0.2)
    sys.exit(f"no Serve proxy URL in {log}")


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
    add_load_options(parser)
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
        "--with-mp-executor",
        action="store_true",
        help="also the modelgrid stack on vLLM's multiprocessing executor (a model worker "
        "process beside the engine process, as bare vLLM on the CPU), to A/B the one-process "
        "engine",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    model_dir, work = prepare(args, "serving")

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
