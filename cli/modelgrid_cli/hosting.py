"""``modelgrid load URI``, ``modelgrid unload NAME``, ``modelgrid models``: models on demand
through a gateway's admin API (``/v1/admin/models``), on a cluster or on ``modelgrid up``.

The gateway is ``--gateway`` (else ``$MODELGRID_GATEWAY``, else ``modelgrid up``'s
``http://127.0.0.1:8000``). The key, of scope ``admin``, comes from ``--api-key-file`` or
``$MODELGRID_API_KEY`` (for ``modelgrid up --admin`` on this machine: the file it wrote), never
from the command line, where every user of the machine could read it (``ps``). ``--wait`` follows the phases and prints each one's time as ``modelgrid up`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from modelgrid_cli.models import BadInput

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
ADMIN_PATH = "/v1/admin/models"
POLL_S = 1.0
CALL_TIMEOUT_S = 30.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``load``, ``unload`` and ``models``."""
    # No abbreviations: `--api-key KEY` must not pass for `--api-key-file` (a key on the command
    # line is what these commands refuse).
    load = sub.add_parser(
        "load", help="load a model through a gateway's admin API", allow_abbrev=False
    )
    load.add_argument(
        "uri",
        help="where the weights are: a Hugging Face id, s3://, gs://, pvc://, a path, an archive "
        "(.tar, .tar.gz, .zip) or builtin://tiny-llama",
    )
    load.add_argument("--name", help="the name to serve it under (default: from the URI)")
    load.add_argument(
        "--alias", action="append", default=[], help="one more name it answers to (repeatable)"
    )
    load.add_argument("--accelerator", choices=("nvidia", "apple", "cpu"), help="its pool's kind")
    load.add_argument("--engine", choices=("auto", "vllm", "mlx"), help="default: auto")
    load.add_argument("--dtype", help="engineArgs.dtype (e.g. bfloat16, float32)")
    load.add_argument("--max-model-len", type=int, help="engineArgs.maxModelLen (tokens)")
    _wait_flags(load, "until it is Ready (or Failed)")
    load.set_defaults(run=run_load)

    unload = sub.add_parser(
        "unload", help="unload a model the admin API loaded", allow_abbrev=False
    )
    unload.add_argument("name", help="the model's name (as `modelgrid models` lists it)")
    _wait_flags(unload, "until it is gone (its requests in flight finish first)")
    unload.set_defaults(run=run_unload)

    models = sub.add_parser(
        "models", help="list a gateway's models with their phases", allow_abbrev=False
    )
    _gateway_flags(models)
    models.set_defaults(run=run_models)


def _gateway_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway",
        default=os.environ.get("MODELGRID_GATEWAY", DEFAULT_GATEWAY),
        help=f"the gateway's URL (default: $MODELGRID_GATEWAY, else {DEFAULT_GATEWAY})",
    )
    parser.add_argument(
        "--api-key-file",
        type=Path,
        help="a file holding the key (of scope admin); default: $MODELGRID_API_KEY",
    )


def _wait_flags(parser: argparse.ArgumentParser, until: str) -> None:
    _gateway_flags(parser)
    parser.add_argument("--wait", action="store_true", help=f"wait {until}")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds --wait waits at most (1800)"
    )


class AdminClient:
    """The admin API of one gateway, called from synchronous code.

    Args:
        gateway: Its base URL.
        key: The API key (None: none sent, for a gateway with auth off).
    """

    def __init__(self, gateway: str, key: str | None) -> None:
        self.base = gateway.rstrip("/")
        self.headers = {"authorization": f"Bearer {key}"} if key else {}

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """One call; returns the JSON answer (None for 404 on a GET or DELETE of a model).

        Raises:
            BadInput: no answer, or an error answer (its message and field).
        """
        from modelgrid_serving import blocking_http

        url = self.base + path
        try:
            if method == "POST":
                assert payload is not None
                reply = blocking_http.post_json(
                    url, payload, timeout_s=CALL_TIMEOUT_S, headers=self.headers
                )
            elif method == "DELETE":
                reply = blocking_http.delete(url, timeout_s=CALL_TIMEOUT_S, headers=self.headers)
            else:
                reply = blocking_http.get(url, timeout_s=CALL_TIMEOUT_S, headers=self.headers)
        except blocking_http.NoAnswer:
            raise BadInput(
                f"no gateway answers at {self.base} (start one with `modelgrid up`, or pass "
                "--gateway)"
            ) from None
        body = _json(reply.text)
        if reply.status < 300:
            return body
        if reply.status == 404 and path != ADMIN_PATH and _code(body) == "model_not_found":
            return None
        raise BadInput(f"{method} {url}: {reply.status}: {_explain(body, reply.text)}")


def admin_client(args: argparse.Namespace) -> AdminClient:
    """The client of ``--gateway`` with the key of ``--api-key-file``, else the environment,
    else, for a gateway on this machine, the key ``modelgrid up --admin`` wrote for its port."""
    key = os.environ.get("MODELGRID_API_KEY") or None
    if args.api_key_file is None and key is None:
        args.api_key_file = _local_key_file(args.gateway)
    if args.api_key_file is not None:
        try:
            key = args.api_key_file.read_text().strip() or None
        except OSError as exc:
            raise BadInput(f"{args.api_key_file}: cannot read it ({exc.strerror})") from None
    if key is not None and not key.isprintable() or key and " " in key:
        raise BadInput("the API key must be one line without spaces (it is not shown here)")
    return AdminClient(args.gateway, key)


def _local_key_file(gateway: str) -> Path | None:
    """The key file of ``modelgrid up --admin`` on the gateway's port, for a gateway on this
    machine whose file exists."""
    from urllib.parse import urlsplit

    from modelgrid_cli.up_admin import admin_key_path

    url = urlsplit(gateway)
    if url.hostname not in ("127.0.0.1", "localhost", "::1") or url.port is None:
        return None
    path = admin_key_path(url.port)
    return path if path.is_file() else None


def load_request(args: argparse.Namespace) -> dict[str, Any]:
    """The body of ``POST /v1/admin/models`` for the ``load`` flags."""
    body: dict[str, Any] = {"uri": args.uri}
    if args.name:
        body["name"] = args.name
    if args.alias:
        body["aliases"] = args.alias
    for flag, field in (("accelerator", "accelerator"), ("engine", "engine")):
        if getattr(args, flag):
            body[field] = getattr(args, flag)
    engine_args = {
        key: value
        for key, value in (("dtype", args.dtype), ("maxModelLen", args.max_model_len))
        if value is not None
    }
    if engine_args:
        body["engineArgs"] = engine_args
    return body


def run_load(args: argparse.Namespace) -> int:
    """Load; with ``--wait``, follow its phases until Ready (0) or Failed (1)."""
    client = admin_client(args)
    started = time.monotonic()
    model = client.call("POST", ADMIN_PATH, load_request(args))
    name = model["name"]
    say(f"{name}: {model['status']['phase']} ({args.uri} through {client.base})")
    if not args.wait:
        say(f"follow it: modelgrid models --gateway {client.base}")
        return 0
    model = follow(client, name, started=started, deadline=started + args.timeout)
    status = model["status"]
    if status["phase"] == "Failed":
        say(f"{name}: Failed: {_reason(status)}")
        return 1
    say(f"{name}: Ready in {time.monotonic() - started:.1f} s{_times(status)}")
    say(
        f"try it: curl {client.base}/v1/chat/completions -H 'content-type: application/json' "
        f"""-d '{{"model": "{model["id"]}", "messages": [{{"role": "user", "content": "Hi"}}]}}'"""
    )
    return 0


def follow(client: AdminClient, name: str, *, started: float, deadline: float) -> dict[str, Any]:
    """Poll model ``name`` until Ready or Failed, printing each phase as it ends, with its time.

    Raises:
        BadInput: the model vanished, or ``deadline`` passed.
    """
    phase, since = "Pending", started
    while True:
        model = client.call("GET", f"{ADMIN_PATH}/{name}")
        if model is None:
            raise BadInput(f"{name}: gone while loading (unloaded, or deleted by someone)")
        now_phase = model["status"]["phase"]
        if now_phase != phase:
            now = time.monotonic()
            say(f"{name}: {phase}: done in {now - since:.2f} s")
            phase, since = now_phase, now
        if phase in ("Ready", "Failed"):
            return model
        if time.monotonic() > deadline:
            raise BadInput(f"{name}: still {phase} after {deadline - started:.0f} s")
        time.sleep(POLL_S)


def run_unload(args: argparse.Namespace) -> int:
    """Unload; with ``--wait``, until the model is gone."""
    client = admin_client(args)
    started = time.monotonic()
    model = client.call("DELETE", f"{ADMIN_PATH}/{args.name}")
    if model is None:
        raise BadInput(f"{args.name}: no such model at {client.base}")
    say(f"{args.name}: {model['status']['phase']} (new requests get 404; those in flight finish)")
    if not args.wait:
        return 0
    while client.call("GET", f"{ADMIN_PATH}/{args.name}") is not None:
        if time.monotonic() > started + args.timeout:
            raise BadInput(f"{args.name}: still there after {args.timeout:.0f} s")
        time.sleep(POLL_S)
    say(f"{args.name}: unloaded in {time.monotonic() - started:.2f} s")
    return 0


def run_models(args: argparse.Namespace) -> int:
    """Print the gateway's admin listing: name, phase, whether the admin API may unload it, URI."""
    listing = admin_client(args).call("GET", ADMIN_PATH)
    rows = [("NAME", "PHASE", "LOADED BY", "URI")]
    for model in listing["data"]:
        loaded_by = model.get("loaded_by") or ("-" if model["managed"] else "(not the admin API)")
        rows.append((model["id"], model["status"]["phase"], loaded_by, model["uri"] or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3])
    return 0


def say(line: str) -> None:
    """One progress line, as ``modelgrid up`` prints them."""
    print(f"[modelgrid] {line}", flush=True)


def _times(status: dict[str, Any]) -> str:
    """The operator's time per phase to Ready, where it reports one."""
    times = status.get("timeToReady") or {}
    parts = [f"{p} {times[p]:.1f} s" for p in ("pending", "scheduling", "loading") if times.get(p)]
    return f" ({', '.join(parts)})" if parts else ""


def _reason(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("status") == "False" and condition.get("message"):
            return f"{condition.get('reason')}: {condition['message']}"
    return "no reason given"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _code(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _explain(body: Any, text: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return text[:200] or "no body"
    return str(error.get("message"))
