"""Generate the gateway's gRPC messages (``serving/modelgrid_serving/gateway/hosting/``) from
its ``.proto`` with the grpcio-tools ``.ci/tools.sh`` pins: ``make grpc``. The generated module is
committed (the gateway then needs protobuf's runtime, not its compiler);
``tests/integration/gateway/test_gateway_grpc_code.py`` generates it again and compares. Only the
messages are generated: ``hosting/rpc.py`` builds the service's handlers and stub from their
descriptor, where protoc's gRPC plugin would write each method out three times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVING = ROOT / "serving"
PROTO = Path("modelgrid_serving/gateway/hosting/model_hosting.proto")
GENERATED = (PROTO.with_name("model_hosting_pb2.py"),)
"""What protoc writes, relative to ``serving/`` (the package root, so imports are absolute)."""


def protoc_python() -> Path:
    """The python of the pinned grpcio-tools (installed by ``.ci/tools.sh`` when missing)."""
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "tools.sh"), "grpcio-tools"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return Path(result.stdout.strip())


def generate(python: Path, out: Path) -> None:
    """Write the generated module under ``out`` (as under ``serving/``)."""
    subprocess.run(
        [
            str(python),
            "-m",
            "grpc_tools.protoc",
            f"-I{SERVING}",
            f"--python_out={out}",
            str(SERVING / PROTO),
        ],
        check=True,
        timeout=120,
    )


if __name__ == "__main__":
    generate(protoc_python(), SERVING)
    print("\n".join(str(SERVING / path) for path in GENERATED), file=sys.stderr)
