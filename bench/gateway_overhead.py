"""What the gateway adds: direct to a backend vs through the gateway, in one run.

    python bench/gateway.py [--requests 2000] [--rounds 2] [--concurrency 1 8 32]
    python bench/gateway.py --stacks     # how the server and client stack was chosen

Starts a fast OpenAI-compatible stub backend (it lives here, in bench/, never in the product),
the gateway in front of it (``python -m modelgrid_serving.gateway``, as users run it) and an
asyncio load generator with keep-alive connections. For each concurrency it measures, in
alternating rounds (direct, gateway, direct, ...) so drift hits both alike; with
``vllm-router`` on PATH (``pip install vllm-router``, a Rust router, best kept in a venv of its
own) it is measured as a third column:

- non-streaming chat: latency p50/p99, and requests/s;
- streaming chat (16 events): time to first event (TTFT) p50/p99;
- ``GET /v1/models`` with 1,000 registered models: p50/p99;
- the gateway's memory (RSS) holding 8,000 idle streams (each stream is two of its sockets).

Every process shares this machine's cores with the load generator, so absolute figures are a
floor of what a dedicated core does; the ratios are the point. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STREAM_EVENTS = 16
_COMPLETION = json.dumps(
    {
        "id": "cmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "stub",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
_CHUNK = (
    b'data: {"id":"cmpl-bench","object":"chat.completion.chunk","created":1,"model":"stub",'
    b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
)
_BODY = json.dumps(
    {"model": "stub", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}
).encode()
_HOLD_BODY = json.dumps(
    {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "stream": True, "hold": True}
).encode()
_STREAM_BODY = json.dumps(
    {
        "model": "stub",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 16,
        "stream": True,
    }
).encode()


# ---- the stub backend ---------------------------------------------------------------------------


def run_stub(port: int) -> None:
    """An OpenAI-compatible server that answers at once: JSON, or 16 SSE events then [DONE]."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if b'"stream": true' not in body and b'"stream":true' not in body:
            return web.Response(body=_COMPLETION, content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        if b'"hold"' in body:  # an idle stream: one event, then nothing until the bench ends
            await resp.write(_CHUNK)
            await asyncio.sleep(3600)
        for _ in range(STREAM_EVENTS):
            await resp.write(_CHUNK)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "stub", "object": "model"}]})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ---- load generation ------------------------------------------------------------------------------


async def measure(
    url: str, *, body: bytes | None, concurrency: int, requests: int, first_event: bool
) -> tuple[list[float], float]:
    """Send ``requests`` requests over ``concurrency`` keep-alive connections.

    Returns:
        Per-request seconds (to the last byte, or to the first SSE event when ``first_event``)
        and the wall time of the whole batch.
    """
    import aiohttp

    samples: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float:
            start = time.perf_counter()
            if body is None:
                async with session.get(url) as resp:
                    await resp.read()
                    return time.perf_counter() - start
            async with session.post(url, data=body, headers=headers) as resp:
                if not first_event:
                    await resp.read()
                    return time.perf_counter() - start
                took = 0.0
                async for chunk in resp.content.iter_any():
                    if not took and b"data:" in chunk:
                        took = time.perf_counter() - start
                return took

        async def worker(n: int) -> None:
            for _ in range(n):
                samples.append(await one())

        await asyncio.gather(*(one() for _ in range(concurrency)))  # warm the connections
        per_worker = max(1, requests // concurrency)
        started = time.perf_counter()
        await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return samples, wall


async def hold_streams(url: str, count: int, pid: int) -> tuple[float, float]:
    """Open ``count`` streams that stay idle after their first event; the RSS (MiB) of process
    ``pid`` before and with all of them open."""
    import aiohttp

    before = rss_mib(pid)
    gate = asyncio.Semaphore(200)  # open them 200 at a time
    responses = []
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def open_one() -> None:
            async with gate:
                resp = await session.post(url, data=_HOLD_BODY, headers=headers)
                while b"data:" not in await resp.content.readany():
                    pass
                responses.append(resp)

        await asyncio.gather(*(open_one() for _ in range(count)))
        await asyncio.sleep(1.0)
        during = rss_mib(pid)
        for resp in responses:
            resp.close()
    return before, during


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_http(url: str, deadline_s: float = 60.0) -> None:
    import urllib.request

    end = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > end:
            raise SystemExit(f"bench: {url} did not answer within {deadline_s}s")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def gateway_config(stub_url: str, *, extra_models: int) -> dict[str, object]:
    models = [{"name": "stub", "backends": [{"url": stub_url + "/v1"}]}]
    models += [
        {
            "name": f"model-{i:04d}",
            "aliases": [f"alias-{i:04d}"],
            "backends": [{"url": stub_url + "/v1"}],
        }
        for i in range(extra_models)
    ]
    # no in-flight bound that matters here: the bench measures overhead, not overload
    return {
        "models": models,
        "limits": {"health_interval_s": 0, "max_in_flight_per_backend": 100000},
    }


# ---- stack candidates (--stacks): the least proxy each server/client pair can be -------------------


def run_proto(kind: str, port: int, upstream: str) -> None:
    """A minimal proxy (read body, read ``model``, POST upstream, answer) on one stack."""
    target = upstream + "/v1/chat/completions"
    headers = {"content-type": "application/json"}
    if kind == "aiohttp-server":
        import aiohttp
        import uvloop
        from aiohttp import web

        async def startup(app: web.Application) -> None:
            app["client"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            json.loads(body)["model"]
            async with request.app["client"].post(target, data=body, headers=headers) as resp:
                data = await resp.read()
            return web.Response(body=data, status=resp.status, content_type="application/json")

        app = web.Application()
        app.on_startup.append(startup)
        app.router.add_post("/v1/chat/completions", handle)
        web.run_app(
            app,
            host="127.0.0.1",
            port=port,
            print=None,
            access_log=None,
            loop=uvloop.new_event_loop(),
        )
        return

    import uvicorn

    client: dict[str, object] = {}

    async def asgi(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                if kind == "uvicorn+httpx":
                    import httpx

                    client["c"] = httpx.AsyncClient(limits=httpx.Limits(max_connections=None))
                else:
                    import aiohttp

                    client["c"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        json.loads(body)["model"]
        c = client["c"]
        if kind == "uvicorn+httpx":
            r = await c.post(target, content=body, headers=headers)  # type: ignore[attr-defined]
            data, status = r.content, r.status_code
        else:
            async with c.post(target, data=body, headers=headers) as r:  # type: ignore[attr-defined]
                data, status = await r.read(), r.status
        out = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})

    uvicorn.run(
        asgi,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


STACKS = ("aiohttp-server", "uvicorn+aiohttp", "uvicorn+httpx")


def run_stacks(
    stub_url: str, work: Path, procs: list[subprocess.Popen[bytes]], args: argparse.Namespace
) -> None:
    targets = {"direct": stub_url}
    for kind in STACKS:
        port = free_port()
        argv = [sys.executable, __file__, "--proto", kind, str(port), stub_url]
        procs.append(start(argv, work / f"proto-{port}.log"))
        wait_http_post(f"http://127.0.0.1:{port}/v1/chat/completions")
        targets[kind] = f"http://127.0.0.1:{port}"
    print("stack candidates, non-streaming chat (minimal proxies, same stub)\n")
    rows = run_matrix(targets, args, kinds=(("chat", _BODY, False),))
    print_table(rows, list(targets))


def wait_http_post(url: str, deadline_s: float = 60.0) -> None:
    import urllib.request

    end = time.monotonic() + deadline_s
    while True:
        try:
            request = urllib.request.Request(
                url, data=_BODY, headers={"content-type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > end:
            raise SystemExit(f"bench: {url} did not answer within {deadline_s}s")
        time.sleep(0.1)


# ---- the run ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per round and concurrency")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--vllm-router",
        default=shutil.which("vllm-router"),
        help="vllm-router executable to compare with (default: on PATH; absent: skipped)",
    )
    parser.add_argument(
        "--idle-streams",
        type=int,
        default=8000,
        help="idle streams held open for the RSS figure (0: skip); each takes two of the "
        "gateway's file descriptors, so 10,000 need a limit above 20,000",
    )
    parser.add_argument(
        "--stacks",
        action="store_true",
        help="compare server/client stacks (minimal proxies) instead",
    )
    parser.add_argument("--stub", type=int, help=argparse.SUPPRESS)  # internal: run the stub
    parser.add_argument("--proto", nargs=3, help=argparse.SUPPRESS)  # internal: a stack candidate
    args = parser.parse_args()
    if args.stub:
        run_stub(args.stub)
        return
    if args.proto:
        run_proto(args.proto[0], int(args.proto[1]), args.proto[2])
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop what we started
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    stub_port, gw_port, gw_many_port = free_port(), free_port(), free_port()
    stub_url = f"http://127.0.0.1:{stub_port}"
    procs = [start([sys.executable, __file__, "--stub", str(stub_port)], work / "stub.log")]
    try:
        wait_http(stub_url + "/health")
        if args.stacks:
            run_stacks(stub_url, work, procs, args)
            return
        for port, extra in ((gw_port, 0), (gw_many_port, 999)):
            config = work / f"gateway-{port}.yaml"
            config.write_text(yaml.safe_dump(gateway_config(stub_url, extra_models=extra)))
            argv = [sys.executable, "-m", "modelgrid_serving.gateway", "--config", str(config)]
            procs.append(start([*argv, "--port", str(port)], work / f"gateway-{port}.log"))
            wait_http(f"http://127.0.0.1:{port}/health")
        targets = {"direct": stub_url, "gateway": f"http://127.0.0.1:{gw_port}"}
        if args.vllm_router:
            port = free_port()
            argv = [args.vllm_router, "--worker-urls", stub_url, "--port", str(port)]
            argv += ["--policy", "round_robin", "--log-level", "warning"]
            procs.append(start(argv, work / "vllm-router.log"))
            wait_http(f"http://127.0.0.1:{port}/health")
            targets["vllm-router"] = f"http://127.0.0.1:{port}"
        print(f"cores: {os.cpu_count()} (stub, gateway and load generator share them)")
        print(f"{args.rounds} alternating rounds x {args.requests} requests per cell\n")
        rows = run_matrix(targets, args)
        print_table(rows, list(targets))
        print_listing(f"http://127.0.0.1:{gw_many_port}/v1/models", args)
        if args.idle_streams:
            before, during = asyncio.run(
                hold_streams(
                    targets["gateway"] + "/v1/chat/completions", args.idle_streams, procs[1].pid
                )
            )
            per = (during - before) * 1024 / args.idle_streams
            print(
                f"{args.idle_streams} idle streams through the gateway: RSS {before:.0f} -> {during:.0f} MiB, "
                f"{per:.1f} KiB a stream (10,000 would add about {per * 10_000 / 1024:.0f} MiB)"
            )
    finally:
        for proc in reversed(procs):
            stop(proc)


KINDS = (("chat", _BODY, False), ("stream TTFT", _STREAM_BODY, True))


def run_matrix(
    targets: dict[str, str],
    args: argparse.Namespace,
    kinds: tuple[tuple[str, bytes, bool], ...] = KINDS,
) -> list[dict[str, object]]:
    rows = []
    for kind, body, first in kinds:
        for concurrency in args.concurrency:
            samples: dict[str, list[float]] = {name: [] for name in targets}
            walls: dict[str, float] = {name: 0.0 for name in targets}
            for _ in range(args.rounds):
                for name, base in targets.items():
                    got, wall = asyncio.run(
                        measure(
                            base + "/v1/chat/completions",
                            body=body,
                            concurrency=concurrency,
                            requests=args.requests,
                            first_event=first,
                        )
                    )
                    samples[name] += got
                    walls[name] += wall
            rows.append(
                {
                    "kind": kind,
                    "c": concurrency,
                    **{
                        f"{n}_{q}": percentile(samples[n], p) * 1000
                        for n in targets
                        for q, p in (("p50", 0.5), ("p99", 0.99))
                    },
                    **{f"{n}_rps": len(samples[n]) / walls[n] for n in targets},
                }
            )
    return rows


def print_table(rows: list[dict[str, object]], targets: list[str]) -> None:
    """One line per measurement; each proxy's figure with what it adds over direct."""
    proxies = [t for t in targets if t != "direct"]
    cols = ["what", "c", "direct p50 / p99 ms", "direct req/s"]
    for name in proxies:
        cols += [f"{name} p50 / p99 ms", f"{name} adds p50 / p99", f"{name} req/s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join(["---"] * len(cols)) + "|")
    for r in rows:
        d50, d99 = float(r["direct_p50"]), float(r["direct_p99"])  # type: ignore[arg-type]
        cells = [
            str(r["kind"]),
            str(r["c"]),
            f"{d50:.2f} / {d99:.2f}",
            f"{float(r['direct_rps']):.0f}",
        ]  # type: ignore[arg-type]
        for name in proxies:
            p50, p99 = float(r[f"{name}_p50"]), float(r[f"{name}_p99"])  # type: ignore[arg-type]
            cells += [
                f"{p50:.2f} / {p99:.2f}",
                f"{p50 - d50:+.2f} / {p99 - d99:+.2f} ms (x{p50 / d50:.1f})",
                f"{float(r[f'{name}_rps']):.0f}",  # type: ignore[arg-type]
            ]
        print("| " + " | ".join(cells) + " |")


def print_listing(url: str, args: argparse.Namespace) -> None:
    samples, _ = asyncio.run(
        measure(url, body=None, concurrency=1, requests=500, first_event=False)
    )
    print(
        f"\nGET /v1/models with 1,000 models (2,000 names): p50 {percentile(samples, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(samples, 0.99) * 1000:.2f} ms (500 requests, one connection)"
    )


if __name__ == "__main__":
    main()
