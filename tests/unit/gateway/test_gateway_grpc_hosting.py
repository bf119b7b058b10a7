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
    ModelHostingService,
    engine_args_for,
    load_body,
    model_status,
)
from modelgrid_serving.gateway.hosting import model_hosting_pb2 as pb
from modelgrid_serving.gateway.hosting import rpc

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


class _RecordingChannel:
    """A channel double: records what each ``unary_unary`` callable was made with."""

    def unary_unary(self, path, request_serializer, response_deserializer):
        return (path, request_serializer, response_deserializer)


class _RecordingServer:
    """A server double: records the handlers registered on it."""

    def __init__(self):
        self.generic = []
        self.registered = {}

    def add_generic_rpc_handlers(self, handlers):
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service, handlers):
        self.registered[service] = handlers


METHODS = {
    "LoadModel": (pb.LoadModelRequest, pb.LoadModelResponse),
    "GetModelStatus": (pb.ModelStatusRequest, pb.ModelStatus),
    "UnloadModel": (pb.UnloadModelRequest, pb.ModelStatus),
}
"""The service's methods as the .proto declares them: request and response message."""


def test_grpc_stub_calls_each_method_by_its_path_with_its_messages():
    stub = rpc.ModelHostingStub(_RecordingChannel())
    for name, (request, response) in METHODS.items():
        path, serialize, deserialize = getattr(stub, name)
        assert path == f"/modelgrid.hosting.v1.ModelHosting/{name}"
        message = request(model_id="m") if name != "LoadModel" else request(model_path="p")
        assert serialize(message) == message.SerializeToString()
        answer = response(model_id="m", phase="Ready")
        assert deserialize(answer.SerializeToString()) == answer


def test_grpc_server_serves_every_method_with_the_servicer_of_its_name():
    server = _RecordingServer()
    service = ModelHostingService(admin=None, authenticate=None)
    rpc.add_to_server(service, server)
    handlers = server.registered["modelgrid.hosting.v1.ModelHosting"]
    assert set(handlers) == set(METHODS)
    for name, (request, response) in METHODS.items():
        handler = handlers[name]
        assert handler.unary_unary == getattr(service, name)
        assert handler.request_deserializer == request.FromString
        assert handler.response_serializer == response.SerializeToString
    assert len(server.generic) == 1


def test_grpc_server_refuses_a_servicer_that_lacks_a_method():
    class Partial:
        async def LoadModel(self, request, context): ...

    with pytest.raises(TypeError, match="Partial does not implement GetModelStatus"):
        rpc.add_to_server(Partial(), _RecordingServer())
