"""What a gateway adds: direct to a backend vs through modelgrid's gateway, LiteLLM's proxy and
vllm-router, in one run, all in front of the same stub backend.

    python bench/gateway_overhead.py [--requests 2000] [--rounds 2] [--concurrency 1 8 32]
    python bench/gateway_overhead.py --baseline REV   # also the gateway of git revision REV
    python bench/gateway_overhead.py --stacks     # how the server and client stack was chosen

Starts a fast OpenAI-compatible stub backend (it lives here, in bench/, never in the product),
modelgrid's gateway in front of it (``python -m modelgrid_serving.gateway``, as users run it),
LiteLLM's proxy and vllm-router in front of the same stub when they are installed, and an
asyncio load generator with keep-alive connections. LiteLLM and vllm-router come from PyPI and
are best kept out of the project's environment, each in a venv of its own::

    python -m venv $CACHE/bench-venvs/litellm
    $CACHE/bench-venvs/litellm/bin/pip install 'litellm[proxy]'
    python -m venv $CACHE/bench-venvs/vllm-router
    $CACHE/bench-venvs/vllm-router/bin/pip install vllm-router

where ``$CACHE`` is ``$MODELGRID_CACHE`` or ``~/.cache/modelgrid``. The bench finds them there,
or at ``$MODELGRID_BENCH_LITELLM`` / ``$MODELGRID_BENCH_VLLM_ROUTER`` (the executables), or on
PATH, and says which one is missing. For each concurrency it measures, in alternating rounds
(direct, gateway, litellm, vllm-router, direct, ...) so drift hits all alike:

- non-streaming chat: latency p50/p99, requests/s, and requests per CPU-second of the server
  process (its pid and children, from /proc via psutil): the requests/s one core sustains;
- streaming chat (16 events): time to first event (TTFT) p50/p99, the same per-core figure;
- the issue's goals: modelgrid's added p50 at most 1/5 of LiteLLM's and 1.5x vllm-router's;
- with ``--baseline REV``: the gateway of that git revision (its ``operator/`` and ``serving/``
  exported with ``git archive`` into a temporary directory, first on its ``PYTHONPATH``) as one
  more candidate in the same alternating rounds, and the ratio of the added p50s, this tree's
  over the baseline's, per level (a change must keep it at most 1.05);
- ``GET /v1/models`` with 1,000 registered models: p50/p99 (goal: p99 <= 5 ms);
- the RSS of one gateway process holding 10,000 idle streams (each stream is two of its
  sockets), opened by several client processes, with the growth per stream. The soft
  ``RLIMIT_NOFILE`` is raised to the hard limit in the bench and its children; when the hard
  limit cannot hold that many, the bench holds as many as fit and says so.

With ``--wait-load L`` (default 1.0) it first waits, polling every 30 s for up to 20 minutes,
until the 1-minute load average is below L, and reports the load during the run. Every process
shares this machine's cores with the load generator, so absolute figures are a floor of what a
dedicated core does; the ratios are the point. Prints tables in Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
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
from typing import Any

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
_LAST_CHUNK = (
    b'data: {"id":"cmpl-bench","object":"chat.completion.chunk","created":1,"model":"stub",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
)
_BODY = json.dumps(
    {"model": "stub", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}
).encode()
API_KEY = "sk-bench-0123456789abcdef"
"""Sent to every target: the gateway and LiteLLM check it (a real deployment has keys on),
the stub and vllm-router ignore it."""
HEADERS = {"content-type": "application/json", "authorization": f"Bearer {API_KEY}"}
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
        for _ in range(STREAM_EVENTS - 1):
            await resp.write(_CHUNK)
        await resp.write(_LAST_CHUNK)  # a finish_reason, as real backends send (LiteLLM needs it)
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


# ---- load generation ----------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and all their children, so far."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            family = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in family:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
    return total


async def measure(
    url: str,
    *,
    body: bytes | None,
    concurrency: int,
    requests: int,
    first_event: bool,
    pids: list[int] = [],  # noqa: B006 - read only
    max_seconds: float = 3600.0,
) -> tuple[list[float], float, float]:
    """Send ``requests`` requests over ``concurrency`` keep-alive connections (or fewer: each
    connection stops sending after ``max_seconds``).

    Returns:
        Per-request seconds (to the last byte, or to the first SSE event when ``first_event``),
        the wall time of the whole batch, and the CPU seconds processes ``pids`` spent in it.
    """
    import aiohttp

    samples: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    headers = HEADERS
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float:
            start = time.perf_counter()
            if body is None:
                async with session.get(url, headers=HEADERS) as resp:
                    await resp.read()
                    return time.perf_counter() - start
            async with session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise SystemExit(f"bench: {url} answered {resp.status}: {await resp.read()!r}")
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
                if time.perf_counter() > deadline:  # a slow target: fewer samples, same duration
                    return
                samples.append(await one())

        await asyncio.gather(*(one() for _ in range(concurrency)))  # warm the connections
        per_worker = max(1, requests // concurrency)
        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        deadline = started + max_seconds
        await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
        wall = time.perf_counter() - started
        cpu = cpu_seconds(pids) - cpu_before
    return samples, wall, cpu


async def hold_client(url: str, count: int) -> None:
    """(A client process of its own.) Open ``count`` streams that stay idle after their first
    event, print ``held N``, then keep them open until stdin closes."""
    import aiohttp

    gate = asyncio.Semaphore(200)  # open them 200 at a time
    responses = []
    headers = HEADERS
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:

        async def open_one() -> None:
            async with gate:
                resp = await session.post(url, data=_HOLD_BODY, headers=headers)
                while b"data:" not in await resp.content.readany():
                    pass
                responses.append(resp)

        results = await asyncio.gather(*(open_one() for _ in range(count)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        print(f"held {len(responses)} failed {len(failed)} {failed[:1]!r}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for resp in responses:
            resp.close()


def hold_streams(
    url: str, count: int, pid: int, work: Path, per_client: int = 2500
) -> list[tuple[int, float]]:
    """Hold ``count`` idle streams through ``url`` from client processes of ``per_client``
    streams each, started one after another; the RSS (MiB) of process ``pid`` before and after
    each client's streams are open, as ``(streams open, MiB)``."""
    points = [(0, rss_mib(pid))]
    clients: list[subprocess.Popen[bytes]] = []
    held = 0
    try:
        while held < count:
            n = min(per_client, count - held)
            argv = [sys.executable, __file__, "--hold-client", url, str(n)]
            with (work / f"hold-{len(clients)}.log").open("wb") as err:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    preexec_fn=raise_nofile,
                )
            clients.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().strip()  # "held N failed M ..."
            parts = line.split()
            if len(parts) < 4 or parts[0] != "held":
                raise SystemExit(f"bench: a stream client failed: {line!r}; see {work}")
            held += int(parts[1])
            if int(parts[3]):
                print(f"  (a client could not open {parts[3]} of its {n} streams: {line})")
                points.append((held, rss_mib(pid)))
                break
            time.sleep(1.0)
            points.append((held, rss_mib(pid)))
    finally:
        for proc in clients:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in clients:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return points


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- processes ----------------------------------------------------------------------------------


def raise_nofile() -> None:
    """Raise the soft limit on open files to the hard limit (here and in children: preexec_fn)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            preexec_fn=raise_nofile,
        )


def wait_http(url: str, deadline_s: float = 60.0, *, post: bytes | None = None) -> None:
    """Until ``url`` answers a GET (a POST of ``post``, when given) with 200; exit after
    ``deadline_s`` seconds, naming it."""
    import urllib.request

    request = urllib.request.Request(url, data=post, headers=HEADERS if post else {})
    end = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
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


def gateway_config(
    stub_url: str, *, extra_models: int, baseline: bool = False
) -> dict[str, object]:
    models = [{"name": "stub", "backends": [{"url": stub_url + "/v1"}]}]
    models += [
        {
            "name": f"model-{i:04d}",
            "aliases": [f"alias-{i:04d}"],
            "backends": [{"url": stub_url + "/v1"}],
        }
        for i in range(extra_models)
    ]
    # no in-flight bound that matters here: the bench measures overhead, not overload (and the
    # idle streams all come with one key); a baseline revision may not know the per-key bound
    limits: dict[str, object] = {"health_interval_s": 0, "max_in_flight_per_backend": 100000}
    if not baseline:
        limits["max_concurrent_per_key"] = 100000
    return {
        "models": models,
        "auth": {
            "enabled": True,
            "keys": [{"name": "bench", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}],
        },
        "limits": limits,
    }


def litellm_config(stub_url: str) -> dict[str, object]:
    """One model routed to the stub as an OpenAI-compatible backend; a master key (LiteLLM
    refuses to start without one; the gateway checks keys too), no database (so no virtual keys
    or spend logs), no callbacks."""
    return {
        "model_list": [
            {
                "model_name": "stub",
                "litellm_params": {
                    "model": "openai/stub",
                    "api_base": stub_url + "/v1",
                    "api_key": "bench",
                },
            }
        ],
        "general_settings": {"master_key": API_KEY},
        "litellm_settings": {"set_verbose": False, "json_logs": False},
    }


def litellm_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        LITELLM_LOG="ERROR",  # as the gateway and vllm-router: warnings and errors only
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no download of the price list at start
        LITELLM_TELEMETRY="False",
        DISABLE_ADMIN_UI="True",
    )
    return env


BENCH_VENVS = (
    Path(os.environ.get("MODELGRID_CACHE") or Path.home() / ".cache" / "modelgrid") / "bench-venvs"
)


def find_tool(env: str, venv: str, exe: str) -> str | None:
    """``$env``, else ``<bench-venvs>/<venv>/bin/<exe>``, else ``exe`` on PATH."""
    if os.environ.get(env):
        return os.environ[env]
    candidate = BENCH_VENVS / venv / "bin" / exe
    if candidate.is_file():
        return str(candidate)
    return shutil.which(exe)


def tool_version(exe: str, dist: str) -> str:
    """The installed version of ``dist`` in the venv of ``exe`` (its ``python`` beside it)."""
    python = Path(exe).parent / "python"
    if not python.exists():
        return "?"
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.stdout.decode().strip() or "?"


def wait_for_quiet(threshold: float, max_wait_s: float = 1200.0, poll_s: float = 30.0) -> None:
    """Wait until the 1-minute load average is below ``threshold`` (or give up, saying so)."""
    waited = 0.0
    while True:
        load = os.getloadavg()
        if load[0] < threshold:
            print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}: starting")
            return
        if waited >= max_wait_s:
            print(
                f"load average still {load[0]:.2f} after {waited:.0f} s: measuring anyway",
                flush=True,
            )
            return
        print(f"load average {load[0]:.2f} >= {threshold}: waiting {poll_s:.0f} s", flush=True)
        time.sleep(poll_s)
        waited += poll_s


# ---- stack candidates (--stacks): the least proxy each server/client pair can be ----------------


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
                elif kind.endswith("+upstream"):
                    from modelgrid_serving.gateway.upstream import Upstream

                    client["c"] = Upstream(connect_timeout_s=5.0, read_timeout_s=600.0)
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
        elif kind.endswith("+upstream"):
            r = await c.post(target, body, [(b"content-type", b"application/json")])  # type: ignore[attr-defined]
            data, status = await r.read(), r.status
            r.close()
        else:
            async with c.post(target, data=body, headers=headers) as r:  # type: ignore[attr-defined]
                data, status = await r.read(), r.status
        out = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})

    if kind == "server+upstream":  # the same app on the gateway's own server
        asyncio.run(serve_own(asgi, port))
        return
    uvicorn.run(
        asgi,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


async def serve_own(asgi: Any, port: int) -> None:
    """``asgi`` (with its lifespan) on the gateway's HTTP server, uvloop, until killed."""
    import uvloop
    from modelgrid_serving.gateway.http_server import HTTPServer

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    sent: list[dict[str, Any]] = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return sent.pop() if sent else await asyncio.Future()

    async def send(message: dict[str, Any]) -> None:
        pass

    lifespan = asyncio.create_task(asgi({"type": "lifespan"}, receive, send))
    server = HTTPServer(asgi)
    await server.start("127.0.0.1", port)
    await lifespan


STACKS = (
    "aiohttp-server",
    "uvicorn+aiohttp",
    "uvicorn+httpx",
    "uvicorn+upstream",
    "server+upstream",
)
"""``+upstream``: the gateway's own client (``modelgrid_serving.gateway.upstream``);
``server+``: the gateway's own HTTP server (``modelgrid_serving.gateway.http_server``), running
the same minimal app as ``uvicorn+upstream``."""


def run_stacks(
    stub_url: str, work: Path, procs: list[subprocess.Popen[bytes]], args: argparse.Namespace
) -> None:
    targets = {"direct": stub_url}
    pids = {"direct": [procs[0].pid]}
    for kind in STACKS:
        port = free_port()
        argv = [sys.executable, __file__, "--proto", kind, str(port), stub_url]
        procs.append(start(argv, work / f"proto-{port}.log"))
        wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", post=_BODY)
        targets[kind] = f"http://127.0.0.1:{port}"
        pids[kind] = [procs[-1].pid]
    print("stack candidates, non-streaming chat (minimal proxies, same stub)\n")
    rows = run_matrix(targets, args, kinds=(("chat", _BODY, False),), pids=pids)
    print_table(rows, list(targets))


# ---- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per round and concurrency")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=15.0,
        help="a round of one target stops sending after this long (slow targets: fewer samples)",
    )
    parser.add_argument(
        "--litellm",
        default=find_tool("MODELGRID_BENCH_LITELLM", "litellm", "litellm"),
        help="LiteLLM's proxy executable (default: $MODELGRID_BENCH_LITELLM, "
        "<cache>/bench-venvs/litellm/bin/litellm, PATH; absent: skipped, and said so)",
    )
    parser.add_argument(
        "--vllm-router",
        default=find_tool("MODELGRID_BENCH_VLLM_ROUTER", "vllm-router", "vllm-router"),
        help="vllm-router executable (default: $MODELGRID_BENCH_VLLM_ROUTER, "
        "<cache>/bench-venvs/vllm-router/bin/vllm-router, PATH; absent: skipped, and said so)",
    )
    parser.add_argument(
        "--idle-streams",
        type=int,
        default=10_000,
        help="idle streams held open through one gateway process for the RSS figure (0: skip)",
    )
    parser.add_argument(
        "--wait-load",
        type=float,
        default=1.0,
        help="first wait (up to 20 min) until the 1-minute load average is below this (0: don't)",
    )
    parser.add_argument(
        "--stacks",
        action="store_true",
        help="compare server/client stacks (minimal proxies) instead",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the gateway of this git revision (e.g. main) and print the ratio of the "
        "added p50s, this tree's over its",
    )
    parser.add_argument("--stub", type=int, help=argparse.SUPPRESS)  # internal: run the stub
    parser.add_argument("--proto", nargs=3, help=argparse.SUPPRESS)  # internal: a stack candidate
    parser.add_argument("--hold-client", nargs=2, help=argparse.SUPPRESS)  # internal: idle streams
    args = parser.parse_args()
    if args.stub:
        run_stub(args.stub)
        return
    if args.proto:
        run_proto(args.proto[0], int(args.proto[1]), args.proto[2])
        return
    if args.hold_client:
        asyncio.run(hold_client(args.hold_client[0], int(args.hold_client[1])))
        return

    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop what we started
    missing = []
    if not args.litellm:
        missing.append(
            "LiteLLM's proxy: not found (set MODELGRID_BENCH_LITELLM, or pip install "
            f"'litellm[proxy]' into {BENCH_VENVS / 'litellm'}); its column is left out"
        )
    if not args.vllm_router:
        missing.append(
            "vllm-router: not found (set MODELGRID_BENCH_VLLM_ROUTER, or pip install vllm-router "
            f"into {BENCH_VENVS / 'vllm-router'}); its column is left out"
        )
    for line in missing:
        print("MISSING " + line, flush=True)
    if args.wait_load > 0:
        wait_for_quiet(args.wait_load)
    loads = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    stub_port, gw_port, gw_many_port = free_port(), free_port(), free_port()
    stub_url = f"http://127.0.0.1:{stub_port}"
    procs = [start([sys.executable, __file__, "--stub", str(stub_port)], work / "stub.log")]
    try:
        wait_http(stub_url + "/health")
        if args.stacks:
            run_stacks(stub_url, work, procs, args)
            return
        pids = {"direct": [procs[0].pid]}
        for port, extra in ((gw_port, 0), (gw_many_port, 999)):
            config = work / f"gateway-{port}.yaml"
            config.write_text(yaml.safe_dump(gateway_config(stub_url, extra_models=extra)))
            argv = [*gateway_argv(config), "--port", str(port)]
            procs.append(start(argv, work / f"gateway-{port}.log"))
            wait_http(f"http://127.0.0.1:{port}/health")
        pids["gateway"] = [procs[1].pid]
        targets = {"direct": stub_url, "gateway": f"http://127.0.0.1:{gw_port}"}
        versions = []
        if args.baseline:
            port = free_port()
            tree = export_revision(args.baseline, work / "baseline")
            config = work / "gateway-baseline.yaml"
            config.write_text(
                yaml.safe_dump(gateway_config(stub_url, extra_models=0, baseline=True))
            )
            argv = [sys.executable, "-m", "modelgrid_serving.gateway", "--config", str(config)]
            path = os.pathsep.join([str(tree / "operator"), str(tree / "serving")])
            env = {**os.environ, "PYTHONPATH": path + os.pathsep + os.environ.get("PYTHONPATH", "")}
            procs.append(start([*argv, "--port", str(port)], work / "gateway-baseline.log", env))
            wait_http(f"http://127.0.0.1:{port}/health")
            targets["baseline"] = f"http://127.0.0.1:{port}"
            pids["baseline"] = [procs[-1].pid]
            versions.append(f"baseline gateway {args.baseline} ({revision(args.baseline)})")
        if args.litellm:
            port = free_port()
            config = work / "litellm.yaml"
            config.write_text(yaml.safe_dump(litellm_config(stub_url)))
            argv = [args.litellm, "--config", str(config), "--host", "127.0.0.1"]
            argv += ["--port", str(port), "--num_workers", "1"]
            procs.append(start(argv, work / "litellm.log", env=litellm_env()))
            wait_http(f"http://127.0.0.1:{port}/health/liveliness", deadline_s=180)
            wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", post=_BODY)
            targets["litellm"] = f"http://127.0.0.1:{port}"
            pids["litellm"] = [procs[-1].pid]
            versions.append(f"litellm {tool_version(args.litellm, 'litellm')}")
        if args.vllm_router:
            port = free_port()
            argv = [args.vllm_router, "--worker-urls", stub_url, "--port", str(port)]
            argv += ["--policy", "round_robin", "--log-level", "warning"]
            procs.append(start(argv, work / "vllm-router.log"))
            wait_http(f"http://127.0.0.1:{port}/health")
            targets["vllm-router"] = f"http://127.0.0.1:{port}"
            pids["vllm-router"] = [procs[-1].pid]
            versions.append(f"vllm-router {tool_version(args.vllm_router, 'vllm-router')}")
        print(f"cores: {os.cpu_count()} (stub, proxies and load generator share them)")
        print(f"compared: {', '.join(versions) or 'modelgrid only'}")
        print(f"{args.rounds} alternating rounds x {args.requests} requests per cell\n")
        rows = run_matrix(targets, args, pids=pids, loads=loads)
        print_table(rows, list(targets))
        if args.baseline:
            print_baseline(rows, args.baseline)
        print_goals(rows, [t for t in targets if t != "baseline"])
        loads.append(os.getloadavg()[0])
        print_listing(f"http://127.0.0.1:{gw_many_port}/v1/models")
        loads.append(os.getloadavg()[0])
        if args.idle_streams:
            run_idle(stub_url, work, procs, args.idle_streams)
            loads.append(os.getloadavg()[0])
        print(
            f"\n1-minute load average during the run: {min(loads):.2f} - {max(loads):.2f} "
            f"(sampled before each cell; the bench's own processes are most of it)"
        )
        for line in missing:
            print("MISSING " + line)
    finally:
        for proc in reversed(procs):
            stop(proc)


def gateway_argv(config: Path) -> list[str]:
    """This tree's gateway over ``config``, its metrics port off (several run side by side)."""
    argv = [sys.executable, "-m", "modelgrid_serving.gateway", "--config", str(config)]
    return [*argv, "--metrics-port", "0"]


REPO = Path(__file__).resolve().parent.parent


def revision(rev: str) -> str:
    """The commit ``rev`` names, abbreviated."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def export_revision(rev: str, into: Path) -> Path:
    """``operator/`` and ``serving/`` of git revision ``rev``, exported into ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "operator", "serving"],
        check=True,
        capture_output=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def print_baseline(rows: list[dict[str, object]], rev: str) -> None:
    """This tree's added p50 over the baseline revision's, per level (goal: at most 1.05)."""
    print(f"\n| what | c | gateway adds p50 ms | {rev} adds p50 ms | ratio (goal <= 1.05) |")
    print("|---|---|---|---|---|")
    for r in rows:
        d50 = float(r["direct_p50"])  # type: ignore[arg-type]
        ours = float(r["gateway_p50"]) - d50  # type: ignore[arg-type]
        theirs = float(r["baseline_p50"]) - d50  # type: ignore[arg-type]
        if theirs > 0:
            ratio = ours / theirs
            verdict = f"{ratio:.3f}: {'met' if ratio <= 1.05 else 'missed'}"
        else:
            verdict = "- (the baseline adds nothing measurable)"
        print(f"| {r['kind']} | {r['c']} | {ours:+.3f} | {theirs:+.3f} | {verdict} |")


def run_idle(stub_url: str, work: Path, procs: list[subprocess.Popen[bytes]], count: int) -> None:
    """A fresh gateway holding ``count`` idle streams: its RSS and the growth per stream."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    fit = count if hard == resource.RLIM_INFINITY else (hard - 100) // 2
    if fit < count:
        print(
            f"\nRLIMIT_NOFILE: the hard limit is {hard} open files a process and each stream is "
            f"two of the gateway's sockets (client and upstream): one gateway process here can "
            f"hold about {fit}, not {count}; holding {fit} (raise the hard limit to measure "
            f"{count})"
        )
        count = fit
    port = free_port()
    config = work / "gateway-idle.yaml"
    config.write_text(yaml.safe_dump(gateway_config(stub_url, extra_models=0)))
    procs.append(start([*gateway_argv(config), "--port", str(port)], work / "gateway-idle.log"))
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health")
    wait_http(base + "/v1/chat/completions", post=_BODY)  # one request: the upstream pool exists
    pid = procs[-1].pid
    limit = Path(f"/proc/{pid}/limits").read_text()
    nofile = next((ln.split()[3:5] for ln in limit.splitlines() if "open files" in ln), ["?", "?"])
    points = hold_streams(base + "/v1/chat/completions", count, pid, work)
    held, during = points[-1]
    before = points[0][1]
    per = (during - before) * 1024 / max(1, held)
    print(
        f"\n{held} idle streams through one gateway process (open-files limit soft/hard "
        f"{nofile[0]}/{nofile[1]}), opened by {len(points) - 1} client processes:"
    )
    print("  streams open -> gateway RSS: " + ", ".join(f"{n}: {m:.0f} MiB" for n, m in points))
    print(
        f"  RSS {before:.0f} -> {during:.0f} MiB: {per:.1f} KiB a stream"
        + (
            f" (10,000 would be about {before + per * 10_000 / 1024:.0f} MiB)"
            if held != 10_000
            else ""
        )
    )


KINDS = (("chat", _BODY, False), ("stream TTFT", _STREAM_BODY, True))


def run_matrix(
    targets: dict[str, str],
    args: argparse.Namespace,
    kinds: tuple[tuple[str, bytes, bool], ...] = KINDS,
    pids: dict[str, list[int]] | None = None,
    loads: list[float] | None = None,
) -> list[dict[str, object]]:
    rows = []
    for kind, body, first in kinds:
        for concurrency in args.concurrency:
            if loads is not None:
                loads.append(os.getloadavg()[0])
            samples: dict[str, list[float]] = {name: [] for name in targets}
            walls: dict[str, float] = {name: 0.0 for name in targets}
            cpus: dict[str, float] = {name: 0.0 for name in targets}
            for _ in range(args.rounds):
                for name, base in targets.items():
                    got, wall, cpu = asyncio.run(
                        measure(
                            base + "/v1/chat/completions",
                            body=body,
                            concurrency=concurrency,
                            requests=args.requests,
                            first_event=first,
                            pids=(pids or {}).get(name, []),
                            max_seconds=args.max_seconds,
                        )
                    )
                    samples[name] += got
                    walls[name] += wall
                    cpus[name] += cpu
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
                    **{f"{n}_n": len(samples[n]) for n in targets},
                    **{
                        f"{n}_percore": len(samples[n]) / cpus[n] if cpus[n] > 0 else 0.0
                        for n in targets
                    },
                }
            )
    return rows


def print_table(rows: list[dict[str, object]], targets: list[str]) -> None:
    """One line per measurement; each proxy's figure with what it adds over direct.

    ``req/s`` is what the load generator got; ``per core`` is requests per CPU-second of the
    server process (the stub for direct): the requests/s one core of it sustains.
    """
    proxies = [t for t in targets if t != "direct"]
    cols = ["what", "c", "direct p50 / p99 ms", "direct req/s"]
    for name in proxies:
        cols += [f"{name} p50 / p99 ms", f"{name} adds p50 / p99 ms", f"{name} req/s, per core"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join(["---"] * len(cols)) + "|")
    for r in rows:
        d50, d99 = float(r["direct_p50"]), float(r["direct_p99"])  # type: ignore[arg-type]
        cells = [
            str(r["kind"]),
            str(r["c"]),
            f"{d50:.2f} / {d99:.2f}",
            f"{float(r['direct_rps']):.0f}",  # type: ignore[arg-type]
        ]
        for name in proxies:
            p50, p99 = float(r[f"{name}_p50"]), float(r[f"{name}_p99"])  # type: ignore[arg-type]
            n = int(r[f"{name}_n"])  # type: ignore[call-overload]
            most = max(int(r[f"{t}_n"]) for t in targets)  # type: ignore[call-overload]
            cells += [
                f"{p50:.2f} / {p99:.2f}" + (f" (n={n})" if n < most else ""),
                f"{p50 - d50:+.2f} / {p99 - d99:+.2f}",
                f"{float(r[f'{name}_rps']):.0f}, "  # type: ignore[arg-type]
                f"{float(r[f'{name}_percore']):.0f}",  # type: ignore[arg-type]
            ]
        print("| " + " | ".join(cells) + " |")


def print_goals(rows: list[dict[str, object]], targets: list[str]) -> None:
    """modelgrid's added p50 against the issue's goals: at most 1/5 of LiteLLM's and at most 1.5x
    vllm-router's."""
    goals = [(n, lim) for n, lim in (("litellm", 0.2), ("vllm-router", 1.5)) if n in targets]
    if not goals:
        print("\ngoals: neither LiteLLM nor vllm-router was measured")
        return
    cols = ["what", "c", "gateway adds p50 ms"]
    for name, lim in goals:
        cols += [f"{name} adds p50 ms", f"gateway / {name} (goal <= {lim:g})"]
    cols.append("per core: gateway / " + " / ".join(n for n, _ in goals))
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "|".join(["---"] * len(cols)) + "|")
    for r in rows:
        d50 = float(r["direct_p50"])  # type: ignore[arg-type]
        ours = float(r["gateway_p50"]) - d50  # type: ignore[arg-type]
        cells = [str(r["kind"]), str(r["c"]), f"{ours:+.2f}"]
        for name, lim in goals:
            theirs = float(r[f"{name}_p50"]) - d50  # type: ignore[arg-type]
            if theirs > 0:
                ratio = ours / theirs
                cells += [f"{theirs:+.2f}", f"{ratio:.2f}: {'met' if ratio <= lim else 'missed'}"]
            else:  # within noise of direct: no ratio
                verdict = "met" if ours <= 0 else "missed"
                cells += [f"{theirs:+.2f}", f"- ({name} adds nothing measurable): {verdict}"]
        cells.append(
            " / ".join(
                f"{float(r[f'{n}_percore']):.0f}"  # type: ignore[arg-type]
                for n in ["gateway", *(n for n, _ in goals)]
            )
        )
        print("| " + " | ".join(cells) + " |")


def print_listing(url: str) -> None:
    samples, _, _ = asyncio.run(
        measure(url, body=None, concurrency=1, requests=500, first_event=False)
    )
    p50, p99 = percentile(samples, 0.5) * 1000, percentile(samples, 0.99) * 1000
    print(
        f"\nGET /v1/models with 1,000 models (2,000 names): p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms (500 requests, one connection; goal p99 <= 5 ms: "
        f"{'met' if p99 <= 5 else 'missed'})"
    )


if __name__ == "__main__":
    main()
