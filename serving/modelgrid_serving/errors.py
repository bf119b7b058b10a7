"""One error shape, one mapper: every error modelgrid answers goes through :func:`error_response`.

The body is OpenAI's ``{"error": {"message", "type", "param", "code"}}``. Each failure a client can
cause has an explicit class with its status code; anything else is a server error (500), so a bug
never looks like a client mistake. HTTP handlers, SSE error events and (later) the gateway's auth
middleware all call :func:`error_response`. Pydantic only: no web framework, no engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError


class ErrorInfo(BaseModel):
    """OpenAI's ``Error`` object."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's ``ErrorResponse``: the body of every non-2xx answer."""

    error: ErrorInfo


class APIError(Exception):
    """Base of the errors modelgrid answers on purpose.

    Each subclass declares what it answers in its class line, so the whole table reads at a
    glance: ``class Gone(ClientError, status=410, code="gone")``. Omitted keywords inherit.
    """

    status_code: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
        if error_type is not None:
            cls.type = error_type
        if code is not None:
            cls.code = code

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})


class ClientError(APIError, status=400, error_type="invalid_request_error"):
    """A request the client can fix: OpenAI's ``invalid_request_error``."""


class RetryLater(APIError, status=503, error_type="service_unavailable"):
    """503 with ``Retry-After``: the request is fine, the moment is not."""

    retry_after_s: int = 5

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        wait = self.retry_after_s if retry_after_s is None else retry_after_s
        super().__init__(message, headers={"Retry-After": str(wait)})


class InvalidRequest(ClientError, code="invalid_value"):
    """400: a field is missing, of the wrong type or out of range (``param`` names it)."""


class InvalidJSON(InvalidRequest, code="invalid_json"):
    """400: the body is not a JSON object."""


class ContextLengthExceeded(InvalidRequest, code="context_length_exceeded"):
    """400: the prompt plus the requested tokens do not fit the model's context."""


class UnsupportedForModel(InvalidRequest, code="unsupported_for_model"):
    """400: the model exists but cannot do this (embeddings on a generative model...)."""


class UnsupportedParameter(InvalidRequest, code="unsupported_parameter"):
    """400: the model's engines cannot honour this field (``param`` names it)."""


class ModelNotFound(ClientError, status=404, code="model_not_found"):
    """404: no served name or alias matches the request's ``model``."""

    def __init__(self, model: str, *, available: tuple[str, ...] = ()) -> None:
        hint = f" Available: {', '.join(available)}." if available else ""
        super().__init__(f"The model '{model}' does not exist.{hint}", param="model")


class RouteNotFound(ClientError, status=404, code="not_found"):
    """404: no such path."""


class MethodNotAllowed(ClientError, status=405, code="method_not_allowed"):
    """405: the path exists, the method does not."""


class ModelNotReady(RetryLater, code="model_not_ready"):
    """503 with ``Retry-After``: the model exists but cannot answer yet (loading, scaling up)."""


class Overloaded(RetryLater, code="overloaded"):
    """503 with ``Retry-After``: too many requests queued."""

    retry_after_s = 1


class EngineError(APIError, status=500, error_type="server_error", code="engine_error"):
    """500: the engine failed while serving a valid request."""


class Unauthorized(ClientError, status=401, code="invalid_api_key"):
    """401: no API key, or one the gateway does not know."""


class Forbidden(ClientError, status=403, code="insufficient_scope"):
    """403: a known key without the scope this route needs (``admin``)."""


class Conflict(ClientError, status=409, code="conflict"):
    """409: the request contradicts what exists (a model of that name, a name another model
    serves)."""


class PayloadTooLarge(ClientError, status=413, code="request_too_large"):
    """413: the request body is over the configured limit."""


class RateLimited(APIError, status=429, error_type="requests", code="rate_limit_exceeded"):
    """429 with ``Retry-After``: a per-key limit; ``type`` is ``requests`` or ``tokens``, as OpenAI."""

    def __init__(self, message: str, *, kind: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.type = kind


class ConcurrencyLimited(RateLimited, code="concurrency_limit_exceeded"):
    """429 with ``Retry-After: 1``: the key has as many requests in flight as it may."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="requests", headers={"Retry-After": "1"})


class RequestTimeout(ClientError, status=408, code="request_timeout"):
    """408: the request body did not arrive within the deadline, or arrived too slowly."""


class UpstreamUnavailable(
    APIError, status=502, error_type="server_error", code="upstream_unavailable"
):
    """502: no backend of the model could be reached (connection failures on every try)."""


@dataclass(frozen=True)
class ErrorReply:
    """What to send: status, OpenAI-shaped body, extra headers."""

    status_code: int
    body: ErrorResponse
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """The JSON body as a dict."""
        return self.body.model_dump()


def error_response(exc: BaseException) -> ErrorReply:
    """Map an exception to the reply the client gets.

    Args:
        exc: An :class:`APIError` (answered as it says), a pydantic ``ValidationError`` (400 naming
            the first offending field) or anything else (500, message hidden: it is our bug).

    Returns:
        The status code, body and headers to send.
    """
    if isinstance(exc, ValidationError):
        exc = from_validation_error(exc)
    if isinstance(exc, APIError):
        info = ErrorInfo(message=exc.message, type=exc.type, param=exc.param, code=exc.code)
        return ErrorReply(exc.status_code, ErrorResponse(error=info), dict(exc.headers))
    info = ErrorInfo(
        message="The server had an error while processing the request.",
        type="server_error",
        code="internal_error",
    )
    return ErrorReply(500, ErrorResponse(error=info))


def from_validation_error(exc: ValidationError) -> InvalidRequest:
    """Turn pydantic's first error into an :class:`InvalidRequest` whose ``param`` is its path,
    or the field a cross-field rule names (``ctx["param"]``, see ``protocol.base.invalid``)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    named = (first.get("ctx") or {}).get("param")  # a cross-field rule names its field itself
    if isinstance(named, str):
        return InvalidRequest(first["msg"], param=named)
    # A union's members each fail on the first field: the member that got deepest says best
    # what is wrong (an object tool_choice is wrong in its "function", not for not being "auto").
    same_field = [e for e in errors if e["loc"][:1] == first["loc"][:1]]
    first = max(same_field, key=lambda e: len(_param_path(e["loc"])))
    param = ".".join(_param_path(first["loc"])) or None
    message = first["msg"]
    if first["type"] == "missing":
        message = f"'{param}' is a required property"
    elif param:
        value = first.get("input")
        message = f"Invalid value for '{param}': {message}" + (
            f" (got {value!r})" if _is_scalar(value) else ""
        )
    return InvalidRequest(message, param=param)


def from_engine_error(
    message: str, *, status_code: int, param: str | None = None, type_: str | None = None
) -> APIError:
    """Map an error an engine reported (status + message) to our classes.

    Engines speak HTTP status codes; we keep the status and give the body our type and code, so
    engine wording reaches the client but the shape is always ours.
    """
    if status_code == 404:
        return RouteNotFound(message, param=param)
    if 400 <= status_code < 500:
        lowered = message.lower()
        if "does not support" in lowered:
            return UnsupportedForModel(message, param=param)
        if "context length" in lowered or "maximum context" in lowered or "too long" in lowered:
            return ContextLengthExceeded(message, param=param or "messages")
        return InvalidRequest(message, param=param)
    if status_code == 503:
        return ModelNotReady(message)
    return EngineError(message, param=param)


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal", "tuple"}


def _param_path(loc: tuple[int | str, ...]) -> list[str]:
    return [str(p) for p in loc if not _is_union_tag(p)]


def _is_union_tag(part: object) -> bool:
    """Pydantic puts the tried member of a union in ``loc`` ("list[str]", or a model's class name:
    "NamedToolChoice"); a param never has it (OpenAI's fields are snake_case)."""
    return isinstance(part, str) and (
        part in _TYPE_TAGS or "[" in part or "(" in part or part[:1].isupper()
    )


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) and len(repr(value)) <= 80
