"""The committed gRPC code is what the pinned grpcio-tools generates from the committed .proto
(the generated-files check: committed so that the gateway needs no compiler, checked so that
it cannot go stale). grpcio-tools is installed on demand (``.ci/tools.sh``), never skipped.
Integration tier: it runs protoc (and may install it), and unit tests start no processes."""

from __future__ import annotations

import pytest
from grpc_code import GENERATED, SERVING, generate, protoc_python

pytestmark = pytest.mark.integration


def test_grpc_code_is_what_the_proto_generates(tmp_path):
    generate(protoc_python(), tmp_path)
    for path in GENERATED:
        assert (tmp_path / path).read_bytes() == (SERVING / path).read_bytes(), (
            f"{path} is stale: run `make grpc`"
        )
