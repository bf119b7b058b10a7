"""The gRPC ``ModelHosting`` service: its definition (``model_hosting.proto``), the message
module protoc generated from it (``model_hosting_pb2``, ``make grpc``; committed, so that the
gateway needs only protobuf's runtime, not its compiler; a unit test regenerates it with the
pinned grpcio-tools and compares), and ``rpc``, the server handlers and client stub built from
the service's descriptor."""
