"""The ``ModelHosting`` service's server handlers and client stub, built from the service
descriptor in the generated ``model_hosting_pb2``.

protoc's gRPC plugin would write a ``_pb2_grpc.py`` that spells out every method three times
(stub, servicer, handlers), each copy the same but for its names; reading the methods off the
descriptor serves them all from one loop, so a method added to the ``.proto`` needs only its
servicer method. Every method of the service is unary-unary (a streaming one is refused here
rather than served wrong).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

from . import model_hosting_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["ModelHosting"]
"""``modelgrid.hosting.v1.ModelHosting``."""


def _unary(method: MethodDescriptor) -> tuple[Any, Any]:
    """The request and response message classes of a unary-unary ``method``."""
    if method.client_streaming or method.server_streaming:
        raise TypeError(f"{SERVICE.full_name}/{method.name}: only unary-unary methods are served")
    return GetMessageClass(method.input_type), GetMessageClass(method.output_type)


def add_to_server(servicer: object, server: grpc.Server | grpc.aio.Server) -> None:
    """Serve every method of the service on ``server`` with ``servicer``'s method of its name.

    Raises:
        TypeError: ``servicer`` lacks one of the service's methods (named).
    """
    handlers = {}
    for method in SERVICE.methods:
        request, response = _unary(method)
        call = getattr(servicer, method.name, None)
        if call is None:
            raise TypeError(f"{type(servicer).__name__} does not implement {method.name}")
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)


class ModelHostingStub:
    """The client: one callable attribute per method (``LoadModel``, ``GetModelStatus``,
    ``UnloadModel``), as on ``channel`` (blocking or ``grpc.aio``).

    Args:
        channel: A ``grpc.Channel`` or ``grpc.aio.Channel``.
    """

    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None:
        for method in SERVICE.methods:
            request, response = _unary(method)
            setattr(
                self,
                method.name,
                channel.unary_unary(
                    f"/{SERVICE.full_name}/{method.name}",
                    request_serializer=request.SerializeToString,
                    response_deserializer=response.FromString,
                ),
            )
