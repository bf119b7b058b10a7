#!/usr/bin/env bash
# End to end on a real cluster: kind + KubeRay + the modelgrid CRD and operator, then the
# tiny CPU model called with the OpenAI SDK; then what KubeRay does with spec changes (a pool
# bound edited, the image changed while the old cluster serves, a pool that cannot be placed
# beside one that serves); then deletion and a check that nothing is left.
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
IMAGE_NEXT="modelgrid/serving:e2e-next"  # the same image under a new tag: "an image change"
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
  stop_forward
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

# What is left of the model: its RayServices, KubeRay's RayClusters for them, and labelled pods.
children() {
  kubectl get rayservices,rayclusters -n "$NAMESPACE" -o name
  kubectl get pods -n "$NAMESPACE" -l "modelgrid.io/model=$MODEL" -o name
}
no_children() { [[ -z "$(children)" ]]; }

# The model's status and its pools' RayServices (one per pool) and Ray clusters.
model_field() {
  kubectl get -n "$NAMESPACE" "inferencemodel/$MODEL" -o jsonpath="{$1}"
}
pool_rayservice() { model_field ".status.pools[?(@.name=='$1')].rayService"; }
cluster_of() {  # cluster_of RAYSERVICE active|pending
  kubectl get -n "$NAMESPACE" "rayservice/$1" -o jsonpath="{.status.$2ServiceStatus.rayClusterName}"
}
group_field() {  # group_field RAYCLUSTER FIELD: a field of its (one) worker group
  kubectl get -n "$NAMESPACE" "raycluster/$1" -o jsonpath="{.spec.workerGroupSpecs[0].$2}"
}
field_is() { [[ "$("${@:2}")" == "$1" ]]; }
field_is_not() { [[ -n "$("${@:2}")" && "$("${@:2}")" != "$1" ]]; }

# Forward a local port to a RayService's serve Service (one forward at a time).
forward_to() {
  stop_forward
  kubectl port-forward -n "$NAMESPACE" "service/$1-serve-svc" "$LOCAL_PORT:8000" >/dev/null &
  PORT_FORWARD_PID=$!
  wait_until 60 "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $LOCAL_PORT), 1)" \
    || die "port-forward to $1-serve-svc did not open"
}
stop_forward() {
  if [[ -n "$PORT_FORWARD_PID" ]]; then
    kill "$PORT_FORWARD_PID" 2>/dev/null || true
    PORT_FORWARD_PID=""
  fi
}

# One chat completion through the forwarded port: the quick check while clusters change.
answers() {
  "$PYTHON" - "$LOCAL_PORT" <<'PY'
import sys

from openai import OpenAI

client = OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key="unused", max_retries=0)
reply = client.chat.completions.create(
    model="tiny-chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, timeout=30
)
assert reply.usage is not None and reply.usage.completion_tokens > 0, reply
PY
}

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

RS="$(pool_rayservice cpu)"
[[ -n "$RS" ]] || die "status.pools[cpu].rayService is empty"
log "calling $MODEL with the OpenAI SDK through a port-forward to $RS-serve-svc"
forward_to "$RS"
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

# 0. Leader election: the leader's pod deleted (SIGTERM) hands the Lease back, the other replica
#    takes it, and the scenarios below are reconciled by that one.
log "scenario: the leading operator's pod is deleted; the other replica takes over"
lease_holder() {
  kubectl -n modelgrid-system get lease modelgrid-operator -o jsonpath='{.spec.holderIdentity}'
}
LEADER="$(lease_holder)"
[[ -n "$LEADER" ]] || die "no operator holds the Lease modelgrid-system/modelgrid-operator"
kubectl -n modelgrid-system delete pod "${LEADER%_*}" --wait=false
wait_until 30 field_is_not "$LEADER" lease_holder || die "the Lease stayed with $LEADER"
log "the Lease moved from $LEADER to $(lease_holder)"

# 1. A pool bound edited: KubeRay's cluster hash leaves bounds out, so the operator patches the
#    running RayCluster; no new cluster starts.
log "scenario: maxReplicas 2 -> 3 reaches the running Ray cluster"
CLUSTER_NOW="$(cluster_of "$RS" active)"
kubectl patch -n "$NAMESPACE" "inferencemodel/$MODEL" --type json \
  -p '[{"op": "replace", "path": "/spec/pools/0/maxReplicas", "value": 3}]'
wait_until 120 field_is 3 group_field "$CLUSTER_NOW" maxReplicas \
  || die "maxReplicas did not reach RayCluster $CLUSTER_NOW"
field_is "$CLUSTER_NOW" cluster_of "$RS" active || die "a bound edit started a new cluster"
[[ -z "$(cluster_of "$RS" pending)" ]] || die "a bound edit prepared a pending cluster"
answers || die "$MODEL stopped answering after a bound edit"

# 2. An image changed: the CPU pool is within the surge limit (upgradeStrategy NewCluster), so
#    KubeRay starts a new cluster beside the serving one; the old one answers until the switch.
log "scenario: a new image; the old cluster serves until the new one is ready"
[[ "$(kubectl get -n "$NAMESPACE" "rayservice/$RS" -o jsonpath='{.spec.upgradeStrategy.type}')" \
  == NewCluster ]] || die "$RS does not say upgradeStrategy NewCluster"
docker tag "$IMAGE" "$IMAGE_NEXT"
kind load docker-image "$IMAGE_NEXT" --name "$CLUSTER"
kubectl -n modelgrid-system set env deployment/modelgrid-operator \
  "MODELGRID_CPU_IMAGE=$IMAGE_NEXT" "MODELGRID_CUDA_IMAGE=$IMAGE_NEXT"
kubectl -n modelgrid-system rollout status deployment/modelgrid-operator --timeout=180s
wait_until 180 field_is_not "" cluster_of "$RS" pending || die "no pending cluster started"
deadline=$((SECONDS + ${TIMEOUT%s}))
while field_is "$CLUSTER_NOW" cluster_of "$RS" active; do
  ((SECONDS < deadline)) || die "the new cluster did not take over within $TIMEOUT"
  answers || die "the serving cluster failed a request while the new one started"
  field_is Ready model_field .status.phase || die "$MODEL left Ready during the upgrade"
  sleep 5
done
NEW_CLUSTER="$(cluster_of "$RS" active)"
image="$(kubectl get -n "$NAMESPACE" "raycluster/$NEW_CLUSTER" \
  -o jsonpath='{.spec.workerGroupSpecs[0].template.spec.containers[0].image}')"
[[ "$image" == "$IMAGE_NEXT" ]] || die "the new cluster runs $image, not $IMAGE_NEXT"
forward_to "$RS"
answers || die "the new cluster does not answer"

# 3. A pool that cannot be placed (no node has its label) beside the one that serves: in a
#    RayService of its own, it leaves the CPU pool's Service serving.
log "scenario: a pool no node can place; the other pool serves"
kubectl patch -n "$NAMESPACE" "inferencemodel/$MODEL" --type json -p '[{"op": "add",
  "path": "/spec/pools/-", "value": {"name": "nowhere", "accelerator": "cpu",
  "nodeSelector": {"modelgrid.io/pool": "nowhere"}}}]'
wait_until 120 field_is Degraded model_field .status.phase || die "$MODEL is not Degraded"
wait_until 60 field_is_not "" pool_rayservice nowhere || die "no RayService for pool nowhere"
NOWHERE="$(pool_rayservice nowhere)"
for _ in 1 2 3; do
  answers || die "the CPU pool stopped answering while pool nowhere waits"
  sleep 5
done
field_is 0 model_field ".status.pools[?(@.name=='nowhere')].readyReplicas" \
  || die "pool nowhere counts ready replicas"
kubectl patch -n "$NAMESPACE" "inferencemodel/$MODEL" --type json \
  -p '[{"op": "remove", "path": "/spec/pools/1"}]'
kubectl wait -n "$NAMESPACE" --for=delete "rayservice/$NOWHERE" --timeout=180s
wait_until 120 field_is Ready model_field .status.phase || die "$MODEL is not Ready again"
stop_forward

log "deleting $MODEL and checking cleanup"
kubectl delete -n "$NAMESPACE" "inferencemodel/$MODEL" --wait --timeout=120s
kubectl wait -n "$NAMESPACE" --for=delete "rayservice/$RS" --timeout=180s
wait_until 300 no_children || die "children of $MODEL are left: $(children)"

log "e2e passed"
