"""gRPC ModelHosting's mapping onto the admin API: precision -> engineArgs, the load body, the
status message, error codes (the calls themselves run on kmock: tests/integration/operator/
test_operator_admin_api.py)."""

from __future__ import annotations

import json

import grpc
import pytest
from modelgrid_serving.errors import Conflict, Forbidden, InvalidRequest, ModelNotFound
from modelgrid_serving.gateway.grpc_hosting import (
    STATUS_CODES,
    engine_args_for,
    load_body,
    model_status,
)
from modelgrid_serving.gateway.hosting import model_hosting_pb2 as pb

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("precision", "engine_args"),
    [
        ("", {}),
        ("auto", {}),
        ("fp16", {"dtype": "float16"}),
        ("FP16", {"dtype": "float16"}),
        ("bf16", {"dtype": "bfloat16"}),
        ("fp32", {"dtype": "float32"}),
        ("fp8", {"extraArgs": {"quantization": "fp8"}}),
    ],
)
def test_grpc_precision_maps_onto_engine_args(precision, engine_args):
    assert engine_args_for(precision) == engine_args


@pytest.mark.parametrize("precision", ["int4", "int8", "fp4", "float64", "../etc"])
def test_grpc_unsupported_precision_is_refused_naming_it(precision):
    with pytest.raises(InvalidRequest) as refused:
        engine_args_for(precision)
    assert refused.value.param == "precision" and repr(precision) in refused.value.message
    if precision.startswith("int"):
        assert "property of the weights" in refused.value.message


def test_grpc_load_body_is_the_admin_request():
    request = pb.LoadModelRequest(model_path="/media/usb/qwen.tar.gz", precision="bf16", name="q")
    assert json.loads(load_body(request)) == {
        "uri": "/media/usb/qwen.tar.gz",
        "name": "q",
        "engineArgs": {"dtype": "bfloat16"},
    }
    assert json.loads(load_body(pb.LoadModelRequest(model_path="org/m"))) == {"uri": "org/m"}


def test_grpc_model_status_carries_phase_times_and_the_reason():
    view = {
        "id": "m",
        "status": {
            "phase": "Failed",
            "timeToReady": {"pending": 1.5, "loading": 3},
            "conditions": [{"type": "Ready", "status": "False", "message": "no GPU"}],
        },
    }
    status = model_status(view)
    assert (status.model_id, status.phase, status.message) == ("m", "Failed", "no GPU")
    assert dict(status.phase_seconds) == {"pending": 1.5, "loading": 3.0}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidRequest("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (Forbidden("x"), grpc.StatusCode.PERMISSION_DENIED),
        (ModelNotFound("m"), grpc.StatusCode.NOT_FOUND),
        (Conflict("x"), grpc.StatusCode.ALREADY_EXISTS),
    ],
)
def test_grpc_status_codes_of_the_admin_errors(error, code):
    assert STATUS_CODES[error.status_code] == code
