"""One error shape: every class maps to its status, type, code and param."""

from __future__ import annotations

import pytest
from modelgrid_serving.errors import (
    ContextLengthExceeded,
    EngineError,
    InvalidJSON,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    ModelNotReady,
    RouteNotFound,
    UnsupportedForModel,
    error_response,
    from_engine_error,
)
from pydantic import BaseModel, ValidationError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("exc", "status", "type_", "code"),
    [
        (InvalidRequest("bad", param="temperature"), 400, "invalid_request_error", "invalid_value"),
        (InvalidJSON("bad"), 400, "invalid_request_error", "invalid_json"),
        (ContextLengthExceeded("long"), 400, "invalid_request_error", "context_length_exceeded"),
        (UnsupportedForModel("no"), 400, "invalid_request_error", "unsupported_for_model"),
        (ModelNotFound("x"), 404, "invalid_request_error", "model_not_found"),
        (RouteNotFound("x"), 404, "invalid_request_error", "not_found"),
        (MethodNotAllowed("x"), 405, "invalid_request_error", "method_not_allowed"),
        (ModelNotReady("loading"), 503, "service_unavailable", "model_not_ready"),
        (EngineError("boom"), 500, "server_error", "engine_error"),
    ],
)
def test_error_response_maps_each_class(exc: Exception, status: int, type_: str, code: str) -> None:
    reply = error_response(exc)
    assert reply.status_code == status
    assert reply.body.error.type == type_
    assert reply.body.error.code == code
    assert set(reply.content()["error"]) == {"message", "type", "param", "code"}


def test_error_response_model_not_found_names_model_and_choices() -> None:
    reply = error_response(ModelNotFound("gpt-9", available=("tiny", "tiny-alias")))
    assert reply.body.error.param == "model"
    assert "gpt-9" in reply.body.error.message and "tiny-alias" in reply.body.error.message


def test_error_response_not_ready_has_retry_after() -> None:
    assert error_response(ModelNotReady("loading", retry_after_s=7)).headers == {"Retry-After": "7"}


@pytest.mark.parametrize("exc", [ValueError("x"), TypeError("y"), RuntimeError("z"), KeyError("k")])
def test_error_response_unexpected_is_a_500_that_hides_the_message(exc: Exception) -> None:
    reply = error_response(exc)
    assert reply.status_code == 500
    assert str(exc) not in reply.body.error.message


def test_error_response_validation_error_is_a_400_naming_the_field() -> None:
    class M(BaseModel):
        temperature: float

    with pytest.raises(ValidationError) as info:
        M.model_validate({"temperature": "hot"})
    reply = error_response(info.value)
    assert reply.status_code == 400
    assert reply.body.error.param == "temperature"


@pytest.mark.parametrize(
    ("status", "message", "cls"),
    [
        (400, "This model's maximum context length is 512 tokens.", ContextLengthExceeded),
        (400, "temperature must be in [0, 2]", InvalidRequest),
        (400, "This model does not support the 'embed' task.", UnsupportedForModel),
        (404, "nope", RouteNotFound),
        (503, "later", ModelNotReady),
        (500, "boom", EngineError),
    ],
)
def test_from_engine_error_keeps_status_and_classifies(
    status: int, message: str, cls: type
) -> None:
    exc = from_engine_error(message, status_code=status, param="p")
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.message == message
