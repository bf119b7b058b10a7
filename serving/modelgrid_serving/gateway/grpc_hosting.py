"""gRPC ``ModelHosting`` (``hosting/model_hosting.proto``): CorpGrid's ``LoadModel(model_path,
precision) -> model_id``, with status and unload, on the admin API's own path.

Each call is a load, show or unload of :class:`~.admin.Admin` with the key of the call's
``authorization`` metadata (scope ``admin``), so a gRPC load is checked, named, bounded and
recorded exactly as ``POST /v1/admin/models``; the precision becomes the spec's ``dtype`` (or
vLLM's online FP8 quantization), and one modelgrid cannot run is refused naming it. Errors map
onto gRPC status codes with the OpenAI error's message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import aiohttp
import grpc

from ..errors import APIError, InvalidRequest
from .admin import Admin, require_admin
from .auth import KeyPolicy
from .hosting import model_hosting_pb2 as pb
from .hosting import rpc

logger = logging.getLogger(__name__)

PRECISIONS: dict[str, dict[str, Any]] = {
    "": {},
    "auto": {},
    "fp32": {"dtype": "float32"},
    "float32": {"dtype": "float32"},
    "fp16": {"dtype": "float16"},
    "float16": {"dtype": "float16"},
    "half": {"dtype": "float16"},
    "bf16": {"dtype": "bfloat16"},
    "bfloat16": {"dtype": "bfloat16"},
    "fp8": {"extraArgs": {"quantization": "fp8"}},
}
"""Precision -> the spec's ``engineArgs``: a dtype, or (fp8) vLLM's online quantization of the
weights, which needs an NVIDIA GPU that has FP8."""
PRE_QUANTIZED = ("int8", "int4", "q8", "q4", "awq", "gptq")
"""Precisions that are a property of the weights, not of loading them: load such a model's own
path with precision ``auto`` (vLLM reads its quantization from its config)."""

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
"""HTTP status of the admin API's error -> gRPC code; 5xx: UNAVAILABLE (502, 503) or INTERNAL."""

SHUTDOWN_GRACE_S = 5.0


def engine_args_for(precision: str) -> dict[str, Any]:
    """The ``engineArgs`` of a precision.

    Raises:
        InvalidRequest: a precision modelgrid cannot load a model at (``param``: precision).
    """
    key = precision.strip().lower()
    if key in PRECISIONS:
        return PRECISIONS[key]
    known = ", ".join(p for p in PRECISIONS if p)
    hint = (
        " (it is a property of the weights: load a model quantized that way with precision auto)"
        if key in PRE_QUANTIZED
        else ""
    )
    raise InvalidRequest(
        f"precision {precision!r} is not supported{hint}; use one of: {known}", param="precision"
    )


def load_body(request: Any) -> bytes:
    """The ``POST /v1/admin/models`` body of a ``LoadModelRequest``."""
    body: dict[str, Any] = {"uri": request.model_path}
    if request.name:
        body["name"] = request.name
    if args := engine_args_for(request.precision):
        body["engineArgs"] = args
    return json.dumps(body).encode()


def model_status(view: dict[str, Any]) -> Any:
    """A ``ModelStatus`` of the admin API's view of a model."""
    status = view["status"]
    times = status.get("timeToReady") or {}
    message = next(
        (
            c.get("message") or ""
            for c in status.get("conditions") or []
            if c.get("type") == "Ready" and c.get("status") != "True"
        ),
        "",
    )
    return pb.ModelStatus(
        model_id=view["id"],
        phase=status["phase"],
        message=message,
        phase_seconds={k: float(v) for k, v in times.items() if isinstance(v, int | float)},
    )


class ModelHostingService:
    """The servicer: one method per method of the service (``hosting.rpc`` serves them).

    Args:
        admin: The admin API it calls.
        authenticate: ``authorization`` header value -> the key's policy (raises Unauthorized).
    """

    def __init__(self, admin: Admin, authenticate: Callable[[bytes | None], KeyPolicy]) -> None:
        self.admin = admin
        self.authenticate = authenticate

    async def LoadModel(self, request: Any, context: Any) -> Any:
        async def load(policy: KeyPolicy) -> Any:
            view = await self.admin.load(load_body(request), policy)
            return pb.LoadModelResponse(model_id=view["id"], phase=view["status"]["phase"])

        return await self._as_admin(context, load)

    async def GetModelStatus(self, request: Any, context: Any) -> Any:
        async def show(policy: KeyPolicy) -> Any:
            return model_status(await self.admin.show(request.model_id))

        return await self._as_admin(context, show)

    async def UnloadModel(self, request: Any, context: Any) -> Any:
        async def unload(policy: KeyPolicy) -> Any:
            return model_status(await self.admin.unload(request.model_id, policy))

        return await self._as_admin(context, unload)

    async def _as_admin(self, context: Any, call: Callable[[KeyPolicy], Awaitable[Any]]) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get("authorization")
        try:
            policy = self.authenticate(authorization.encode() if authorization else None)
            require_admin(policy)
            return await call(policy)
        except APIError as exc:
            await _abort(context, exc)
        except Exception:  # our bug: INTERNAL, logged
            logger.exception("ModelHosting call failed")
            await context.abort(grpc.StatusCode.INTERNAL, "The server had an error.")


async def _abort(context: Any, exc: APIError) -> NoReturn:
    code = STATUS_CODES.get(exc.status_code)
    if code is None:
        code = (
            grpc.StatusCode.UNAVAILABLE
            if exc.status_code in (502, 503)
            else grpc.StatusCode.INTERNAL
        )
    message = (
        f"{exc.param}: {exc.message}" if exc.param and exc.param not in exc.message else exc.message
    )
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class GrpcHosting:
    """The gRPC server of :class:`ModelHostingService`, a gateway service.

    Args:
        service: The servicer.
        listen: ``HOST:PORT`` (port 0: any free one, see :attr:`port`).
    """

    def __init__(self, service: ModelHostingService, listen: str) -> None:
        self.service = service
        self.listen = listen
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None

    def start(self, session: aiohttp.ClientSession) -> None:
        """Bind and start serving on the running loop (``session``: unused)."""
        server = grpc.aio.server()
        rpc.add_to_server(self.service, server)
        self.port = server.add_insecure_port(self.listen)
        if not self.port:
            raise ValueError(f"admin.grpc_listen: cannot listen on {self.listen}")
        self._server = server
        self._started = asyncio.ensure_future(server.start())

    async def stop(self) -> None:
        """Stop serving (calls in flight get a grace) and let go of the server: grpc's poller
        thread ends once no server or channel of this process is left."""
        if self._server is not None:
            await self._started
            await self._server.stop(SHUTDOWN_GRACE_S)
            self._server = None
