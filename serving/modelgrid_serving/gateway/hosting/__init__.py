"""The gRPC ``ModelHosting`` service's definition (``model_hosting.proto``) and the code protoc
generated from it (``make grpc``; committed, so that the gateway needs only grpcio's runtime,
not its compiler; a unit test regenerates it with the pinned grpcio-tools and compares)."""
