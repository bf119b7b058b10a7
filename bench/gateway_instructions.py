"""What one request costs the gateway, counted rather than timed: CPU instructions (callgrind)
and system calls (strace) per request, for this tree and any git revisions, in one run.

    python bench/gateway_instructions.py --revisions c3c59c8 [REV ...] [--requests 1000]

Why a second gateway bench: on a shared two-core machine the added latency that
``gateway_overhead.py`` times scatters by 10-20% between runs of the same code minutes apart,
so a goal like "the added p50 grows at most 5%" cannot be shown or refuted by timing alone.
What the gateway adds to a request is the CPU it spends on it, in its own code (user space) and
in the kernel for its socket calls; the first is counted exactly by callgrind (instructions,
repeatable to about 0.3% whatever else runs), the second by the number of system calls strace
sees. Equal system calls and N% more instructions mean at most about N% more added time at any
load, where the gateway's CPU is what a request waits for.

For each tree (this one, then each revision exported with ``git archive``), in front of
``gateway_overhead.py``'s stub backend, with 8 keep-alive clients:

- instructions: the gateway runs under ``valgrind --tool=callgrind --instr-atstart=no``; after a
  warm-up, counting is switched on with ``callgrind_control`` for exactly ``--requests``
  non-streaming chat requests, then for as many streams (16 events each), and each batch's
  total is divided by its requests;
- system calls: the same gateway natively, ``strace -c -f`` attached for one batch of each kind.

valgrind and strace come from Debian's packages (``apt-get install valgrind strace``); a tool
that is missing is said so and its columns are left out. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_overhead as overhead

KINDS = {"chat": (overhead._BODY, False), "stream": (overhead._STREAM_BODY, True)}
"""What is sent: the body and whether it streams (timed to the first event)."""

CLIENTS = 8


def tree_of(rev: str | None, work: Path) -> Path:
    """The repository root for this tree (``None``), or ``rev``'s product code exported."""
    if rev is None:
        return overhead.REPO
    into = work / f"tree-{overhead.revision(rev)}"
    into.mkdir(parents=True)
    paths = ["cli", "operator", "serving"]
    listed = subprocess.run(
        ["git", "-C", str(overhead.REPO), "ls-tree", "--name-only", rev, *paths],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    archive = subprocess.run(
        ["git", "-C", str(overhead.REPO), "archive", "--format=tar", rev, *listed],
        check=True,
        capture_output=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def gateway_command(tree: Path, config: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """How to run ``tree``'s gateway: argv and environment (its code first on the path)."""
    gateway = tree / "serving" / "modelgrid_serving" / "gateway"
    has_metrics_port = "--metrics-port" in (gateway / "__main__.py").read_text()
    argv = [sys.executable, "-m", "modelgrid_serving.gateway", "--config", str(config)]
    argv += ["--port", str(port)]
    if has_metrics_port:
        argv += ["--metrics-port", "0"]
    path = os.pathsep.join(str(tree / p) for p in ("cli", "operator", "serving"))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": "0"}
    return argv, env


def write_config(tree: Path, stub_url: str, into: Path) -> Path:
    """The overhead bench's gateway config, without settings a revision may not know."""
    settings = (tree / "serving" / "modelgrid_serving" / "gateway" / "config.py").read_text()
    knows_key_bound = "max_concurrent_per_key" in settings
    config = overhead.gateway_config(stub_url, extra_models=0, baseline=not knows_key_bound)
    into.write_text(yaml.safe_dump(config))
    return into


def load(url: str, kind: str, requests: int) -> int:
    """Send ``requests`` of ``kind``; the number answered."""
    body, first_event = KINDS[kind]
    samples, _, _ = asyncio.run(
        overhead.measure(
            url + "/v1/chat/completions",
            body=body,
            concurrency=CLIENTS,
            requests=requests,
            first_event=first_event,
            max_seconds=3600.0,
        )
    )
    return len(samples)


def count_instructions(tree: Path, stub_url: str, work: Path, requests: int) -> dict[str, float]:
    """Instructions per request of ``tree``'s gateway, per kind."""
    port = overhead.free_port()
    argv, env = gateway_command(tree, write_config(tree, stub_url, work / "gw.yaml"), port)
    out = work / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    proc = overhead.start(
        [*valgrind, f"--callgrind-out-file={out}.%p", *argv], work / "cg.log", env
    )
    found: dict[str, float] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        overhead.wait_http(url + "/health", deadline_s=600.0)
        for kind in KINDS:
            load(url, kind, 200)  # warm: connections, caches, first-call paths

        def control(*flags: str) -> None:
            cmd = ["callgrind_control", *flags, str(proc.pid)]
            subprocess.run(cmd, check=True, capture_output=True)

        for kind in KINDS:
            control("--instr=on")
            control("--zero")
            answered = load(url, kind, requests)
            control("--dump")
            control("--instr=off")
            found[kind] = _dumped_total(work, out.name) / answered
    finally:
        overhead.stop(proc)
    return found


def _dumped_total(work: Path, prefix: str) -> int:
    """The instruction total of the newest callgrind dump (callgrind writes it asynchronously)."""
    for _ in range(100):
        dumps = sorted(work.glob(prefix + ".*"), key=os.path.getmtime)
        if dumps:
            for line in dumps[-1].read_text(errors="replace").splitlines():
                if line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
                    dumps[-1].unlink()
                    return total
        time.sleep(0.1)
    raise SystemExit(f"bench: no callgrind dump appeared in {work}")


def count_syscalls(tree: Path, stub_url: str, work: Path, requests: int) -> dict[str, float]:
    """System calls per request of ``tree``'s gateway (run natively), per kind."""
    port = overhead.free_port()
    argv, env = gateway_command(tree, write_config(tree, stub_url, work / "gw.yaml"), port)
    proc = overhead.start(argv, work / "gw.log", env)
    found: dict[str, float] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        overhead.wait_http(url + "/health")
        for kind in KINDS:
            load(url, kind, 200)
        for kind in KINDS:
            report = work / f"strace-{kind}.txt"
            tracer = subprocess.Popen(
                ["strace", "-c", "-f", "-o", str(report), "-p", str(proc.pid)],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # attached to every thread before the first request
            answered = load(url, kind, requests)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(60)
            found[kind] = _strace_total(report) / answered
    finally:
        overhead.stop(proc)
    return found


def _strace_total(report: Path) -> int:
    """The ``calls`` column of strace's ``total`` line."""
    for line in report.read_text().splitlines():
        fields = line.split()
        if fields and fields[-1] == "total":
            return int(fields[3])
    raise SystemExit(f"bench: no total in {report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--revisions", nargs="*", default=[], metavar="REV")
    parser.add_argument("--requests", type=int, default=1000, help="per batch and kind")
    args = parser.parse_args()
    tools = {t: shutil.which(t) for t in ("valgrind", "callgrind_control", "strace")}
    for tool, where in tools.items():
        if where is None:
            print(f"MISSING {tool}: apt-get install valgrind strace; its column is left out")
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    stub_port = overhead.free_port()
    stub_url = f"http://127.0.0.1:{stub_port}"
    stub = overhead.start(
        [sys.executable, overhead.__file__, "--stub", str(stub_port)], work / "stub.log"
    )
    rows: list[tuple[str, dict[str, float], dict[str, float]]] = []
    try:
        overhead.wait_http(stub_url + "/health")
        for rev in [None, *args.revisions]:
            label = "this tree" if rev is None else overhead.revision(rev)
            tree = tree_of(rev, work)
            here = work / label.replace(" ", "-")
            here.mkdir()
            instructions = syscalls = {}
            if tools["valgrind"] and tools["callgrind_control"]:
                instructions = count_instructions(tree, stub_url, here, args.requests)
            if tools["strace"]:
                syscalls = count_syscalls(tree, stub_url, here, args.requests)
            rows.append((label, instructions, syscalls))
            print(f"measured {label}", flush=True)
    finally:
        overhead.stop(stub)
    print_table(rows, args.requests)


def print_table(rows: list[tuple[str, dict[str, float], dict[str, float]]], requests: int) -> None:
    """One row per tree; ratios against the last revision given (the baseline)."""
    base = rows[-1]
    print(f"\n{requests} requests per kind, {CLIENTS} clients; ratio: over {base[0]}\n")
    print(
        "| gateway | chat: instructions / request | ratio | stream: instructions / request "
        "| ratio | chat: syscalls / request | stream: syscalls / request |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, instructions, syscalls in rows:
        cells = [label]
        for kind in KINDS:
            mine, theirs = instructions.get(kind), base[1].get(kind)
            cells.append(f"{mine:,.0f}" if mine else "-")
            cells.append(f"{mine / theirs:.3f}" if mine and theirs else "-")
        cells += [f"{syscalls[k]:.2f}" if k in syscalls else "-" for k in KINDS]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
