#!/usr/bin/env bash
# End to end on a real cluster: kind + KubeRay + the modelgrid CRD and operator, then the
# tiny CPU model called with the OpenAI SDK, then deletion and a check that nothing is left.
#
# Needs Docker, kind, kubectl, helm and a Python with the `openai` package (see README.md).
# Environment:
#   CLUSTER=modelgrid-e2e      kind cluster name
#   KEEP_CLUSTER=1             leave the cluster running afterwards (default: delete it)
#   KUBERAY_VERSION=x.y.z      KubeRay Helm chart version (default: the pinned one below;
#                              modelgrid supports KubeRay 1.6 to 1.7)
#   PYTHON=python3             interpreter with the openai package
#   TIMEOUT=1200s              how long the model may take to become Ready
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CLUSTER="${CLUSTER:-modelgrid-e2e}"
IMAGE="modelgrid/serving:e2e"
PYTHON="${PYTHON:-python3}"
TIMEOUT="${TIMEOUT:-1200s}"
MODEL_FILE="$ROOT/examples/cpu-tiny.yaml"
MODEL="tiny-chat"
NAMESPACE="default"
LOCAL_PORT="${LOCAL_PORT:-18000}"
KUBERAY_VERSION="${KUBERAY_VERSION:-1.7.0}"
PORT_FORWARD_PID=""
CLUSTER_UP=0

log() { printf '\n==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  if [[ "$CLUSTER_UP" == "1" ]]; then dump_state; fi
  exit 1
}

cleanup() {
  if [[ -n "$PORT_FORWARD_PID" ]]; then
    kill "$PORT_FORWARD_PID" 2>/dev/null || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" || true
  fi
}

dump_state() {
  log "state at failure"
  kubectl get inferencemodels,rayservices,pods -A -o wide || true
  kubectl -n modelgrid-system logs deployment/modelgrid-operator --tail=100 || true
  kubectl describe inferencemodel "$MODEL" -n "$NAMESPACE" || true
}

# What is left of the model: its RayService, KubeRay's RayCluster for it, and labelled pods.
children() {
  kubectl get rayservices,rayclusters -n "$NAMESPACE" -o name
  kubectl get pods -n "$NAMESPACE" -l "modelgrid.io/model=$MODEL" -o name
}
no_children() { [[ -z "$(children)" ]]; }

# Poll until a command succeeds, or fail after a deadline (never a fixed sleep).
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 2
  done
}

for tool in docker kind kubectl helm "$PYTHON"; do
  command -v "$tool" >/dev/null || die "$tool is not installed (see e2e/kind/README.md)"
done
docker info >/dev/null 2>&1 || die "no Docker engine is reachable: kind needs one"
"$PYTHON" -c 'import openai' 2>/dev/null || die "$PYTHON cannot import openai (pip install openai)"

trap cleanup EXIT
trap '[[ "$CLUSTER_UP" == "1" ]] && dump_state' ERR

log "building $IMAGE"
docker build -f "$HERE/Dockerfile" -t "$IMAGE" "$ROOT"

log "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" --wait 120s
CLUSTER_UP=1
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "installing KubeRay $KUBERAY_VERSION"
helm repo add kuberay https://ray-project.github.io/kuberay-helm/ --force-update
helm upgrade --install kuberay-operator kuberay/kuberay-operator \
  --namespace kuberay-system --create-namespace --wait --timeout 5m \
  --version "$KUBERAY_VERSION"

log "installing the modelgrid CRD and operator"
kubectl apply -f "$ROOT/crds/"
kubectl wait --for=condition=Established crd/inferencemodels.modelgrid.io --timeout=60s
kubectl apply -f "$HERE/manifests/namespace.yaml"
kubectl apply -f "$HERE/manifests/"
kubectl -n modelgrid-system rollout status deployment/modelgrid-operator --timeout=180s

log "applying $MODEL_FILE"
kubectl apply -n "$NAMESPACE" -f "$MODEL_FILE"
kubectl wait -n "$NAMESPACE" "inferencemodel/$MODEL" \
  --for=jsonpath='{.status.phase}'=Ready --timeout="$TIMEOUT"
kubectl get -n "$NAMESPACE" "inferencemodel/$MODEL"

log "calling $MODEL with the OpenAI SDK through a port-forward"
kubectl port-forward -n "$NAMESPACE" "service/$MODEL-serve-svc" "$LOCAL_PORT:8000" >/dev/null &
PORT_FORWARD_PID=$!
wait_until 60 "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $LOCAL_PORT), 1)" \
  || die "port-forward to $MODEL-serve-svc did not open"
"$PYTHON" - "$LOCAL_PORT" <<'PY'
import sys

from openai import OpenAI

client = OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key="unused")
names = {m.id for m in client.models.list()}
assert {"tiny-chat", "gpt-4o-mini"} <= names, names
for name in ("tiny-chat", "gpt-4o-mini"):
    reply = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "Hello"}], max_tokens=8
    )
    assert reply.choices[0].message.content is not None, reply
    assert reply.usage is not None and reply.usage.completion_tokens > 0, reply
stream = client.chat.completions.create(
    model="tiny-chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=8, stream=True
)
chunks = [c for c in stream if c.choices and c.choices[0].delta.content]
assert chunks, "the stream carried no content"
print(f"OK: {sorted(names)} answered; {len(chunks)} streamed chunks")
PY
kill "$PORT_FORWARD_PID"
PORT_FORWARD_PID=""

log "deleting $MODEL and checking cleanup"
kubectl delete -n "$NAMESPACE" "inferencemodel/$MODEL" --wait --timeout=120s
kubectl wait -n "$NAMESPACE" --for=delete "rayservice/$MODEL" --timeout=180s
wait_until 300 no_children || die "children of $MODEL are left: $(children)"

log "e2e passed"
