"""Local mode (``modelgrid up``): the same Serve applications on an embedded Ray, no Kubernetes.

Phases, each timed and printed: resolve model -> load (MLX servers of Apple pools start, Ray
starts, each pool's replica starts its engine) -> warm-up (one real request through the HTTP
path, per pool) -> ready. Ctrl-C or SIGTERM stops Serve and
Ray; every process this run started carries a marker in its environment, and whatever survives
the orderly shutdown is ended by that marker, so nothing strays. With an :class:`UpAdmin`, the
gateway in front also serves the admin API: models loaded through it are deployed here, next to
the first (:mod:`.local_admin`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import mlx_sidecar
from .config import AppConfig, Engine, LocalRun, ModelConfig, application_name, route_prefix
from .local_admin import ControlServer, LocalModels, Plan
from .marked_processes import alive, marked_pids
from .sources import ModelSourceError, resolve_model_source

SESSION_ENV = "MODELGRID_LOCAL_SESSION"
"""Set in the environment of every process a local run starts; its value names the run."""

_MIN_LOGICAL_CPUS = 8
"""Ray's logical CPUs: the replica and the engine ask for 2, the proxy and controller for some;
a 2-core laptop must still schedule them all (logical CPUs are not cores)."""


_RAY_SERVE_ENV = (
    "RAY_SERVE_THROUGHPUT_OPTIMIZED",
    "RAY_SERVE_ENABLE_DIRECT_INGRESS",
    "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT",
    "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S",
)


@dataclass(frozen=True)
class PoolEndpoint:
    """Where one pool of the model answers on this machine (OpenAI routes at ``<url>/v1/...``)."""

    pool: str
    engine: str
    url: str
    """Base URL, no trailing slash."""


Front = Callable[..., AbstractContextManager[object]]
"""Serves the model's name on ``host:port`` over its pools (a gateway), for as long as the
context lasts: ``front(config, endpoints, host, port, extra=...)``, ``extra`` being more of the
gateway's configuration (the admin API's). Used when the model has several pools, or an admin."""


@dataclass(frozen=True)
class UpAdmin:
    """The admin API of ``modelgrid up --admin``: its front takes loads for this process.

    Attributes:
        plan: InferenceModel document -> LocalRun (the CLI's: the operator's ``to_local_run``).
        key_sha256: The hash of the key of scope ``admin`` (the only one; without a key,
            requests may use the models but not load any).
        accelerator: The pool of a load that names none.
        grpc_listen: ``HOST:PORT`` of the gRPC ModelHosting service too; None: none.
    """

    plan: Plan
    key_sha256: str
    accelerator: str = "cpu"
    grpc_listen: str | None = None


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def serve(
    config: LocalRun,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    direct: bool = True,
    front: Front | None = None,
    console_port: int | None = None,
    admin: UpAdmin | None = None,
) -> None:
    """Serve ``config`` on ``host:port`` until Ctrl-C or SIGTERM. Blocks.

    One Serve application per pool, as in a cluster. One pool answers at ``host:port``. Several
    pools answer at ``/pools/<pool>`` through the Serve proxy, on ``port`` or, when ``front`` is
    given, on a spare port while ``front`` serves the model's name on ``port``. An MLX pool gets
    an mlx-lm server started here as its sidecar.

    Args:
        config: The model and its pools; each pool runs one replica on this machine (one engine
            per pool is all one machine should run).
        host: The interface the OpenAI API listens on.
        port: Its port.
        direct: With one pool, the replica itself listens on ``port`` (Ray Serve's direct
            ingress) and the Serve proxy on a spare port; False puts the proxy on ``port``.
        front: What serves the model's name over several pools (see :data:`Front`).
        console_port: With one pool and a ``front``, also run the front on this port: its web
            console (``/ui/``) and its OpenAI API over the same replica. None: no console with
            one pool (with several, the front on ``port`` serves it).
        admin: Serve the admin API on the front (which then is on ``port``, as with several
            pools): models loaded through it are deployed here under ``/models/<name>``.

    Raises:
        SystemExit: with a one-line message when the model source is missing or the application
            fails to start.
    """
    out = sys.stdout
    started = time.perf_counter()
    config = _resolve(config, out)
    if admin is not None and front is None:
        raise SystemExit("modelgrid: the admin API needs the gateway in front")
    # Several pools, or models to come: one gateway on `port` over the Serve proxy.
    several = len(config.pools) > 1 or admin is not None
    with _session() as session, _stop_on_signals():
        try:
            running = _start(
                config,
                host=host,
                port=port,
                direct=direct and not several,
                proxy_on_port=not (several and front),
                session=session,
                out=out,
            )
        except _Stop:
            _say(out, "stopping before ready")
            return
        try:  # a signal may come while the front starts, too
            with _admin_control(admin, running, session, out) as extra:
                _serve_until_stopped(
                    config,
                    running,
                    host=host,
                    port=port,
                    front=front,
                    console_port=console_port,
                    started=started,
                    out=out,
                    extra=extra,
                )
        except _Stop:
            _say(out, "stopping")


@contextmanager
def _admin_control(
    admin: UpAdmin | None, running: _Running, session: _Session, out: TextIO
) -> Iterator[dict[str, Any]]:
    """With ``admin``: the control endpoint that deploys loaded models here, for as long as
    the context lasts. Yields the gateway configuration that points the front at it (empty
    without ``admin``)."""
    if admin is None:
        yield {}
        return
    sidecars: dict[str, mlx_sidecar.Sidecar] = {}

    def deploy(app: AppConfig, name: str, prefix: str) -> str:
        with_sidecar = _with_sidecars((app,), Path(session.temp_dir), session.sidecars, out)[0]
        if with_sidecar is not app:
            sidecars[name] = session.sidecars[-1]
        _run_application(with_sidecar, name, prefix)
        url = running.proxy_url + prefix
        _warm_up(url, app.model_name)
        return url

    def undeploy(name: str) -> None:
        from ray import serve

        try:
            serve.delete(name)
        finally:
            if (sidecar := sidecars.pop(name, None)) is not None:
                sidecar.stop()

    control = ControlServer(LocalModels(admin.plan, deploy, undeploy)).start()
    token_file = Path(session.temp_dir) / "control-token"
    token_file.touch(mode=0o600)
    token_file.write_text(control.token)
    try:
        yield {
            "auth": {
                "enabled": True,
                "anonymous": True,
                "keys": [{"name": "admin", "sha256": admin.key_sha256, "scopes": ["admin"]}],
            },
            "admin": {
                "enabled": True,
                "accelerator": admin.accelerator,
                "control_url": control.url,
                "control_token_file": str(token_file),
                **({"grpc_listen": admin.grpc_listen} if admin.grpc_listen else {}),
            },
        }
    finally:
        control.stop()


@dataclass(frozen=True)
class _Session:
    """What one run starts that must not outlive it: the marker its processes carry (its
    ``SESSION_ENV`` value), its temporary folder (Ray's session files, the MLX servers' work),
    and the MLX servers it started, filled in as they start."""

    marker: str
    temp_dir: str
    sidecars: list[mlx_sidecar.Sidecar] = field(default_factory=list)


@contextmanager
def _session() -> Iterator[_Session]:
    """A fresh :class:`_Session`, marked in this process's environment so that every process
    started from here inherits the marker; on the way out (a return, a signal, an error) all of
    it is stopped and removed and the environment is as before, so a second run in the same
    process starts clean."""
    marker = uuid.uuid4().hex[:12]
    session = _Session(marker, tempfile.mkdtemp(prefix=f"modelgrid-{marker}-"))
    os.environ[SESSION_ENV] = marker
    try:
        yield session
    finally:
        _shutdown(session.marker, session.temp_dir, session.sidecars)
        for name in (SESSION_ENV, *_RAY_SERVE_ENV):
            os.environ.pop(name, None)


@dataclass(frozen=True)
class _Running:
    """What the load and warm-up phases leave serving."""

    timings: dict[str, float]
    """Seconds of each phase, by name, in the order they ran."""
    endpoints: list[PoolEndpoint]
    """Where each pool answers, in the order of the model's pools."""
    route: str
    """The kind of request the first pool answered at warm-up ("chat" or "embeddings"): what
    the ready message suggests to try."""
    proxy_url: str
    """The Serve proxy's base URL (every application's routes, by prefix)."""


def _serve_until_stopped(
    config: LocalRun,
    running: _Running,
    *,
    host: str,
    port: int,
    front: Front | None,
    console_port: int | None,
    started: float,
    out: TextIO,
    extra: Mapping[str, Any],
) -> None:
    """The "ready" phase: say where each pool answers, start the front where there is one, say
    ready, and wait for a signal (raised here as :class:`_Stop`). ``extra``: more of the
    front's configuration (the admin API); given, the front is on ``port``."""
    several = len(running.endpoints) > 1 or bool(extra)
    for endpoint in running.endpoints:
        _say(out, f"pool {endpoint.pool} ({endpoint.engine}) at {endpoint.url}")
    url = f"http://{_display_host(host)}:{port}"
    if several and not front:
        url = running.endpoints[0].url  # no single URL over the pools: show the first
    front_port = _front_port(host, port, several, front, console_port, out)
    with (
        front(config, running.endpoints, host, front_port, extra=extra)
        if front and front_port
        else nullcontext()
    ):
        if front and front_port:
            _say(out, f"web console at http://{_display_host(host)}:{front_port}/ui/")
        total = time.perf_counter() - started
        _say_ready(config, running.timings, total, url, running.route, out)
        while True:
            time.sleep(3600)


def _resolve(config: LocalRun, out: TextIO) -> LocalRun:
    """The "resolve model" phase: check the source before anything heavy starts (a missing
    path ends the run with one line, not a Ray traceback), and give each pool one replica (one
    engine per pool is all one machine should run)."""
    with _phase(out, "resolve model"):
        try:
            source = resolve_model_source(config.model_source)
        except ModelSourceError as exc:
            raise SystemExit(f"modelgrid: {exc}") from None
        pools = tuple(
            p.model_copy(update={"min_replicas": 1, "max_replicas": 1}) for p in config.pools
        )
        config = config.model_copy(update={"model_source": source, "pools": pools})
    _say(out, f"  model {config.model_name!r} from {source}")
    return config


def _front_port(
    host: str, port: int, several: bool, front: Front | None, console_port: int | None, out: TextIO
) -> int | None:
    """Where the front (gateway and web console) listens: ``port`` over several pools, else
    the console port, unless that is taken (one pool still serves without a console)."""
    front_port = port if several else console_port
    if not several and front and front_port and not _port_free(host, front_port):
        _say(out, f"web console: port {front_port} is taken; none (see --console-port)")
        return None
    return front_port


def _say_ready(
    config: ModelConfig,
    timings: dict[str, float],
    total: float,
    url: str,
    route: str,
    out: TextIO,
) -> None:
    """The "ready" lines: the time of each phase, the API's URL and a request to paste."""
    _say(
        out,
        f"ready: {config.model_name} in {total:.1f} s ("
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
        + ")",
    )
    _say(out, f"OpenAI API at {url}/v1")
    _say(out, "try:")
    _say(out, curl_example(url, config.model_name, route))
    _say(out, "Ctrl-C to stop")


_WARM_UP_REQUESTS = {
    "chat": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
    ),
    "embeddings": ("/v1/embeddings", {"input": "hi"}),
}


def curl_example(url: str, model: str, route: str = "chat") -> str:
    """A copy-paste ``curl`` for a chat completion (or an embedding, for embedding models)."""
    if route == "embeddings":
        path, fields = "/v1/embeddings", {"input": "Say hello"}
    else:
        path = "/v1/chat/completions"
        fields = {"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 32}
    body = json.dumps({"model": model, **fields})
    return f"  curl -s {url}{path} -H 'Content-Type: application/json' -d '{body}'"


def _start(
    config: LocalRun,
    *,
    host: str,
    port: int,
    direct: bool,
    proxy_on_port: bool,
    session: _Session,
    out: TextIO,
) -> _Running:
    """The "load" and "warm-up" phases: start the MLX sidecars, Ray, one application per pool;
    then one real request per pool."""
    _quiet_engine_logs()
    proxy_port = _set_ingress(host, port, direct=direct, proxy_on_port=proxy_on_port)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    apps = _with_sidecars(config.applications(), Path(session.temp_dir), session.sidecars, out)
    _say(out, "load: starting Ray and the engine (this takes a minute on CPU)")
    _start_ray(host, proxy_port, session.temp_dir)
    base = f"http://{_display_host(host)}:{port if direct else proxy_port}"
    endpoints = [_deploy(app, len(apps), base) for app in apps]
    timings["load"] = time.perf_counter() - t0
    _say(out, f"load: done in {timings['load']:.1f} s")
    if direct:
        _say(out, f"  Serve proxy at http://{_display_host(host)}:{proxy_port} (same routes)")

    t1 = time.perf_counter()
    routes = [_warm_up(endpoint.url, config.model_name) for endpoint in endpoints]
    timings["warm-up"] = time.perf_counter() - t1
    _say(out, f"warm-up: done in {timings['warm-up']:.2f} s")
    proxy_url = f"http://{_display_host(host)}:{proxy_port}"
    return _Running(timings, endpoints, routes[0], proxy_url)


def _quiet_engine_logs() -> None:
    """Engine chatter goes to Ray's log files; the terminal shows our phases."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    logging.getLogger("vllm").setLevel(logging.ERROR)  # its import-time notices, in this process


def _set_ingress(host: str, port: int, *, direct: bool, proxy_on_port: bool) -> int:
    """Set the environment Ray Serve reads at process start for how requests reach replicas.

    Returns:
        The port of the Serve proxy: ``port`` when it serves the API, else a spare one.
    """
    proxy_port = port if proxy_on_port else _free_port(host)
    # Ray Serve's throughput mode: user code and the router run on the replica's own event loop
    # (no thread hop per streamed chunk), access logs are buffered, the GC is frozen after
    # start. Measured against the default on this path: bench/RESULTS.md (Serving); set it to 0
    # in the environment to compare.
    os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "0"  # the mode would turn it on; see below
    if direct:
        # Direct ingress: requests reach the replica's own HTTP server, not through the Serve
        # proxy actor (one process hop less per streamed chunk: ~3x the throughput at 32
        # streams on two cores). Ray reads these at process start, hence the environment.
        proxy_port = _free_port(host)
        os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"
        os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(port)
        os.environ["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(port + 1)
        # A replica keeps answering for this long after it is told to stop, for load balancers
        # to notice (30 s by default); here no balancer watches, and Ctrl-C should be quick.
        os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
    # Ray starts its workers at niceness 15, below its own daemons; here the worker is the
    # engine, the one process that should win the CPU.
    os.environ.setdefault("RAY_worker_niceness", "0")
    return proxy_port


def _start_ray(host: str, proxy_port: int, temp_dir: str) -> None:
    """An embedded Ray with enough logical CPUs to schedule every actor, then Serve's proxy.
    Signals are trapped again after each: Ray installs its own SIGTERM handler."""
    import ray
    from ray import serve

    ray.init(
        num_cpus=max(_MIN_LOGICAL_CPUS, os.cpu_count() or 1),
        _temp_dir=temp_dir,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        configure_logging=True,
    )
    _trap_signals()
    serve.start(
        http_options={"host": host, "port": proxy_port}, logging_config={"log_level": "WARNING"}
    )
    _trap_signals()


def _deploy(app: AppConfig, n_pools: int, base: str) -> PoolEndpoint:
    """Deploy one pool's application, named and routed as in a cluster; a failure ends the run
    with Ray's last line, not its traceback.

    Returns:
        Where the pool answers: ``base`` plus its route prefix.
    """
    pool = app.pool
    prefix = route_prefix(pool.name, n_pools)
    _run_application(app, application_name(app.model_name, pool.name, n_pools), prefix)
    return PoolEndpoint(pool.name, pool.engine.value, base + prefix.rstrip("/"))


def _run_application(app: AppConfig, name: str, prefix: str) -> None:
    """Deploy one pool's application as ``name`` at ``prefix``; a failure raises SystemExit
    with Ray's last line, not its traceback."""
    from ray import serve

    from .app import build_app

    try:
        serve.run(build_app(app.model_dump(mode="json")), name=name, route_prefix=prefix)
    except _Stop:
        raise
    except Exception as exc:  # noqa: BLE001 - any deploy failure ends the run with one line
        raise SystemExit(
            f"modelgrid: {app.model_name} (pool {app.pool.name}) failed to start: "
            f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}"
        ) from None


def _with_sidecars(
    apps: tuple[AppConfig, ...], work: Path, sidecars: list[mlx_sidecar.Sidecar], out: TextIO
) -> list[AppConfig]:
    """Start an MLX server for each MLX pool that names none; point the pool at it."""
    ready = []
    for app in apps:
        pool = app.pool
        if pool.engine == Engine.MLX and not pool.mlx_server_url:
            _say(out, f"load: starting the MLX server of pool {pool.name}")
            try:
                sidecar = mlx_sidecar.start(
                    app.model_source, port=_free_port("127.0.0.1"), work=work / pool.name
                )
            except mlx_sidecar.SidecarError as exc:
                raise SystemExit(f"modelgrid: pool {pool.name}: {exc}") from None
            sidecars.append(sidecar)
            pool = pool.model_copy(update={"mlx_server_url": sidecar.url})
            app = app.model_copy(update={"pool": pool})
        ready.append(app)
    return ready


def _warm_up(url: str, model: str, *, deadline_s: float = 60.0) -> str:
    """One real request through the HTTP path (the first one pays for lazy initialisation).

    Returns:
        The route that answered: "chat", or "embeddings" for an embedding model.
    """
    from . import blocking_http

    end = time.monotonic() + deadline_s
    routes = list(_WARM_UP_REQUESTS)
    last: object = None
    while routes and time.monotonic() < end:
        path, fields = _WARM_UP_REQUESTS[routes[0]]
        try:
            reply = blocking_http.post_json(
                f"{url}{path}", {"model": model, **fields}, timeout_s=30
            )
        except blocking_http.NoAnswer as exc:  # not listening yet: retry
            last = exc
            time.sleep(0.2)
            continue
        if reply.status == 200:
            return routes[0]
        last = f"HTTP {reply.status}: {reply.text[:200]}"
        if reply.status == 400 and "unsupported_for_model" in reply.text:
            routes.pop(0)  # an embedding model: try the next kind of request
        elif reply.status < 500:
            break  # a client error will not go away by retrying
        else:
            time.sleep(0.2)
    raise SystemExit(f"modelgrid: warm-up request failed: {last}")


@contextmanager
def _phase(out: TextIO, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    _say(out, f"{name}: done in {time.perf_counter() - t0:.2f} s")


def _raise_stop(signum: int, _frame: object) -> None:
    # Ignore repeats: the first signal starts the shutdown, which must run to its end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stop(signal.Signals(signum).name)


def _trap_signals() -> None:
    """Route SIGINT and SIGTERM to :class:`_Stop`. Called again after ``ray.init``, which
    installs its own SIGTERM handler (one that aborts the driver without cleaning up)."""
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _trap_signals()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _shutdown(session: str, temp_dir: str, sidecars: Sequence[mlx_sidecar.Sidecar] = ()) -> None:
    """Stop Serve, then Ray, then the MLX servers, then end whatever still carries the marker;
    never raise.

    Ctrl-C in a terminal signals the whole process group, Ray's own processes included: an
    actor may die of it and Ray re-raises its KeyboardInterrupt here. Each step therefore runs
    whatever the previous one did.
    """
    import ray
    from ray import serve

    if ray.is_initialized():
        for step in (serve.shutdown, ray.shutdown):
            try:
                step()
            except BaseException as exc:  # noqa: BLE001 - the next steps must still run
                print(f"modelgrid: shutdown: {type(exc).__name__}: {exc}", file=sys.stderr)
    for sidecar in sidecars:
        sidecar.stop()
    _end_marked_processes(session)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _end_marked_processes(session: str, *, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process whose environment carries this run's marker."""
    marked = marked_pids(SESSION_ENV, session)
    for pid in marked:
        _signal(pid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while marked and time.monotonic() < end:
        time.sleep(0.1)
        marked = [pid for pid in marked if alive(pid)]
    for pid in marked:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((_display_host(host), 0))
        return int(s.getsockname()[1])


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def _say(out: TextIO, line: str) -> None:
    print(f"[modelgrid] {line}" if not line.startswith("  ") else line, file=out, flush=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m modelgrid_serving.local CONFIG.json [--host H] [--port P]``: serve a LocalRun
    file (JSON) directly. ``modelgrid up`` is the user-facing way; this one serves tests and
    benchmarks, which build their LocalRun in code."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m modelgrid_serving.local")
    parser.add_argument("config", type=Path, help="a LocalRun (a model and its pools) as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--via-proxy", action="store_true", help="serve through the Serve proxy, as in a cluster"
    )
    args = parser.parse_args(argv)
    config = LocalRun.model_validate_json(args.config.read_text())
    serve(config, host=args.host, port=args.port, direct=not args.via_proxy)


if __name__ == "__main__":
    main()
