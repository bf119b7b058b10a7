"""The gateway's admin API in Kubernetes mode, on kmock with the real operator beside it.

The gateway runs in-process (its ASGI app through httpx), its store writing InferenceModels to
kmock with the kubernetes client, the real operator reconciling them. kmock checks no schema, so
each object the admin API writes is put through the CRD as an API server would (pruning,
defaults, the OpenAPI schema and every CEL rule: ``fidelity_support.admission``).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from emulated_cluster import NAMESPACE, Cluster
from fidelity_support.admission import admit, crd_schema
from modelgrid_cli.spec_check import check_spec
from modelgrid_operator.crd import build_crd
from modelgrid_operator.validation import InvalidModel, parse_model
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.cluster_models import ClusterModels
from modelgrid_serving.gateway.config import GatewayConfig
from modelgrid_serving.gateway.state import GatewayState
from polling import eventually

pytestmark = pytest.mark.integration

ADMIN_KEY, USER_KEY = "sk-admin-k8s-1", "sk-user-k8s-1"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
USER = {"authorization": f"Bearer {USER_KEY}"}
SCHEMA = crd_schema(build_crd())


def _admin_gateway(cluster: Cluster, **admin: str) -> GatewayState:
    """A gateway with keys (admin and user) whose admin API writes to kmock's ``default``;
    ``admin`` adds to its admin settings."""
    config = GatewayConfig.model_validate(
        {
            "auth": {
                "enabled": True,
                "keys": [
                    {"name": "ops", "sha256": hash_key(ADMIN_KEY), "scopes": ["admin"]},
                    {"name": "app", "sha256": hash_key(USER_KEY)},
                ],
            },
            "admin": {"enabled": True, "namespace": NAMESPACE, "accelerator": "cpu", **admin},
            "limits": {"health_interval_s": 0},
        }
    )
    return GatewayState(
        config, check_spec=check_spec, model_store=ClusterModels(NAMESPACE, cluster.api)
    )


@pytest.fixture()
async def admin_api(cluster: Cluster) -> Any:
    """An httpx client on the gateway's app, whose admin API writes to kmock's ``default``."""
    state = _admin_gateway(cluster)
    transport = httpx.ASGITransport(app=Gateway(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
    await state.shutdown()


async def test_admin_api_creates_a_valid_inferencemodel_the_operator_serves(
    cluster: Cluster, operator: Any, admin_api: httpx.AsyncClient
) -> None:
    answer = await admin_api.post(
        "/v1/admin/models",
        json={"uri": "builtin://tiny-llama", "name": "second", "aliases": ["tiny"]},
        headers=ADMIN,
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == "/v1/admin/models/second"
    stored = cluster.model("second")
    assert stored is not None
    admission = admit(stored, SCHEMA)
    assert admission.errors == [] and admission.pruned == []  # schema + CEL, nothing dropped
    parse_model(stored)
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelgrid-admin-api"

    # a model like any other: the operator renders its RayService and reports its phase (given
    # the uid and generation an API server assigns, which kmock does not)
    await cluster.patch_model("second", {"metadata": {"uid": "uid-second", "generation": 1}})
    await operator()
    await eventually(lambda: cluster.rayservice("second", "cpu"), what="the RayService")
    await eventually(lambda: cluster.phase("second") == "Scheduling", what="phase Scheduling")
    shown = (await admin_api.get("/v1/admin/models/second", headers=ADMIN)).json()
    assert shown["status"]["phase"] == "Scheduling"
    assert shown["status"]["servedModelNames"] == ["second", "tiny"]

    answer = await admin_api.delete("/v1/admin/models/second", headers=ADMIN)
    assert answer.status_code == 202 and answer.json()["status"]["phase"] == "Unloading"
    await eventually(lambda: cluster.model("second") is None, what="the model deleted")
    gone = await admin_api.get("/v1/admin/models/second", headers=ADMIN)
    assert gone.status_code == 404


@pytest.mark.security
async def test_admin_api_on_the_cluster_refuses_a_key_without_the_scope(
    cluster: Cluster, admin_api: httpx.AsyncClient
) -> None:
    answer = await admin_api.post(
        "/v1/admin/models", json={"uri": "builtin://tiny-llama"}, headers=USER
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "insufficient_scope"
    assert cluster.model("tiny-llama") is None


async def test_admin_api_on_the_cluster_names_the_bad_field_as_render_does(
    cluster: Cluster, admin_api: httpx.AsyncClient
) -> None:
    pools = [{"name": "cpu", "accelerator": "cpu", "minReplicas": 2, "maxReplicas": 1}]
    answer = await admin_api.post(
        "/v1/admin/models",
        json={"uri": "builtin://tiny-llama", "pools": pools},
        headers=ADMIN,
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "spec.pools[0].minReplicas"
    document = {
        "apiVersion": "modelgrid.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": "tiny-llama"},
        "spec": {"model": {"uri": "builtin://tiny-llama"}, "pools": pools},
    }
    with pytest.raises(InvalidModel) as render:
        parse_model(document)
    assert error["message"] == str(render.value.errors[0])
    assert cluster.writes("/inferencemodels", "POST") == []


@pytest.mark.security
async def test_admin_api_leaves_models_it_did_not_create_alone(
    cluster: Cluster, admin_api: httpx.AsyncClient
) -> None:
    await cluster.create_model(
        "team", {"model": {"uri": "org/model"}, "pools": [{"name": "cpu", "accelerator": "cpu"}]}
    )
    listed = (await admin_api.get("/v1/admin/models", headers=ADMIN)).json()["data"]
    assert [(m["id"], m["managed"]) for m in listed] == [("team", False)]
    answer = await admin_api.delete("/v1/admin/models/team", headers=ADMIN)
    assert answer.status_code == 403
    assert cluster.model("team") is not None
    assert cluster.writes("/inferencemodels/team", "DELETE") == []


@pytest.fixture()
async def grpc_port(cluster: Cluster) -> Any:
    """The port of the gateway's gRPC ModelHosting server, whose admin API writes to kmock."""
    state = _admin_gateway(cluster, grpc_listen="127.0.0.1:0")
    await state.startup()
    yield state.grpc.port
    await state.shutdown()
    del state
    gc.collect()  # grpc's poller thread ends once its last server and channel are gone


@asynccontextmanager
async def model_hosting(port: int) -> AsyncIterator[Any]:
    """A ModelHosting stub on ``port`` (its channel closed and gone with the context)."""
    import grpc
    from modelgrid_serving.gateway.hosting import rpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield rpc.ModelHostingStub(channel)
    del channel
    gc.collect()


async def test_grpc_load_model_creates_the_inferencemodel_and_unloads_it(
    cluster: Cluster, grpc_port: int
) -> None:
    from modelgrid_serving.gateway.hosting import model_hosting_pb2 as pb

    admin = (("authorization", f"Bearer {ADMIN_KEY}"),)
    async with model_hosting(grpc_port) as hosting:
        answer = await hosting.LoadModel(
            pb.LoadModelRequest(model_path="/models/Qwen2-0.5B", precision="bf16"), metadata=admin
        )
        assert (answer.model_id, answer.phase) == ("qwen2-0-5b", "Pending")
        stored = cluster.model("qwen2-0-5b")
        assert stored is not None and admit(stored, SCHEMA).errors == []
        assert stored["spec"]["engineArgs"] == {"dtype": "bfloat16"}
        assert stored["spec"]["model"]["uri"] == "/models/Qwen2-0.5B"

        status = await hosting.GetModelStatus(
            pb.ModelStatusRequest(model_id="qwen2-0-5b"), metadata=admin
        )
        assert (status.model_id, status.phase) == ("qwen2-0-5b", "Pending")
        status = await hosting.UnloadModel(
            pb.UnloadModelRequest(model_id="qwen2-0-5b"), metadata=admin
        )
        assert status.phase == "Unloading"
    await eventually(lambda: cluster.model("qwen2-0-5b") is None, what="the model deleted")


@pytest.mark.security
@pytest.mark.parametrize(
    ("model_path", "precision", "metadata", "code", "words"),
    [
        ("/models/x", "int4", (("authorization", f"Bearer {ADMIN_KEY}"),), "INVALID_ARGUMENT", "int4"),
        ("/models/x", "fp16", (("authorization", f"Bearer {USER_KEY}"),), "PERMISSION_DENIED", "admin"),
        ("/models/x", "fp16", (), "UNAUTHENTICATED", "API key"),
        ("not a path", "auto", (("authorization", f"Bearer {ADMIN_KEY}"),), "INVALID_ARGUMENT",
         "spec.model.uri: "),
    ],
)  # fmt: skip
async def test_grpc_load_model_refusals_name_the_problem(
    cluster: Cluster,
    grpc_port: int,
    model_path: str,
    precision: str,
    metadata: tuple[tuple[str, str], ...],
    code: str,
    words: str,
) -> None:
    import grpc
    from modelgrid_serving.gateway.hosting import model_hosting_pb2 as pb

    async with model_hosting(grpc_port) as hosting:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await hosting.LoadModel(
                pb.LoadModelRequest(model_path=model_path, precision=precision), metadata=metadata
            )
    assert refused.value.code() == getattr(grpc.StatusCode, code)
    assert words in (refused.value.details() or "")
    assert cluster.writes("/inferencemodels", "POST") == []
