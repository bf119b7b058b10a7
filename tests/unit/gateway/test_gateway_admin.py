"""The admin API in-process, no sockets: scope, validation by the typed spec, names, unload.

The store is an in-memory double of :class:`~modelgrid_serving.gateway.admin.ModelStore` (the
cluster's is tested on kmock in tests/integration/gateway/test_gateway_admin_kubernetes.py);
the spec check is the real one the CLI hands the gateway.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from modelgrid_cli.spec_check import check_spec
from modelgrid_operator.validation import InvalidModel, parse_model
from modelgrid_serving.gateway.admin import (
    LOADED_BY_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MAX_CALLS_IN_FLIGHT,
    name_from_uri,
)
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.config import GatewayConfig
from modelgrid_serving.gateway.routing import Backend, ModelEntry
from modelgrid_serving.gateway.state import GatewayState
from pydantic import ValidationError
from unit.gateway.test_gateway_asgi import call, error_code

pytestmark = pytest.mark.unit

ADMIN_KEY, USER_KEY = "sk-admin-0001", "sk-user-0001"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
USER = {"authorization": f"Bearer {USER_KEY}"}
NAMESPACE = "models"


class MemoryStore:
    """InferenceModels of one namespace, in a dict (a unit-test double)."""

    namespace = NAMESPACE

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.deleted: list[tuple[str, str | None]] = []

    def source_of(self, name: str) -> str:
        return f"kubernetes:{NAMESPACE}/{name}"

    async def create(self, document: dict[str, Any]) -> dict[str, Any]:
        name = document["metadata"]["name"]
        stored = json.loads(json.dumps(document))
        stored["metadata"]["uid"] = f"uid-{name}"
        self.objects[name] = stored
        return stored

    async def get(self, name: str) -> dict[str, Any] | None:
        return self.objects.get(name)

    async def list(self) -> list[dict[str, Any]]:
        return list(self.objects.values())

    async def delete(self, name: str, uid: str | None) -> None:
        self.deleted.append((name, uid))
        self.objects.pop(name, None)


def make_admin_gateway(**admin: Any) -> tuple[Gateway, MemoryStore]:
    config = GatewayConfig.model_validate(
        {
            "models": [{"name": "llama", "backends": [{"url": "http://127.0.0.1:9/v1"}]}],
            "auth": {
                "enabled": True,
                "keys": [
                    {"name": "ops", "sha256": hash_key(ADMIN_KEY), "scopes": ["admin"]},
                    {"name": "app", "sha256": hash_key(USER_KEY)},
                ],
            },
            "admin": {"enabled": True, "accelerator": "cpu", **admin},
        }
    )
    store = MemoryStore()
    return Gateway(GatewayState(config, check_spec=check_spec, model_store=store)), store


async def load(app: Gateway, body: dict[str, Any], headers: dict[str, str] = ADMIN) -> Any:
    status, out_headers, raw = await call(
        app, "POST", "/v1/admin/models", json.dumps(body).encode(), headers
    )
    return status, out_headers, json.loads(raw)


async def test_admin_load_answers_202_with_location_and_labels_the_model() -> None:
    app, store = make_admin_gateway()
    status, headers, body = await load(app, {"uri": "builtin://tiny-llama", "aliases": ["tiny"]})
    assert status == 202
    assert headers["location"] == "/v1/admin/models/tiny-llama"
    assert body["id"] == "tiny-llama" and body["status"]["phase"] == "Pending"
    stored = store.objects["tiny-llama"]
    assert stored["metadata"]["namespace"] == NAMESPACE
    assert stored["metadata"]["labels"] == {MANAGED_BY_LABEL: MANAGED_BY}
    assert stored["metadata"]["annotations"] == {LOADED_BY_ANNOTATION: "ops"}  # name, not key
    assert stored["spec"]["pools"] == [{"name": "cpu", "accelerator": "cpu"}]
    parse_model(stored)  # what was stored is a valid InferenceModel

    status, _, raw = await call(app, "GET", "/v1/admin/models/tiny-llama", headers=ADMIN)
    assert status == 200 and json.loads(raw)["spec"]["aliases"] == ["tiny"]
    status, _, raw = await call(app, "GET", "/v1/admin/models", headers=ADMIN)
    assert [m["id"] for m in json.loads(raw)["data"]] == ["tiny-llama"]


@pytest.mark.parametrize("path", ["/v1/admin/models", "/v1/admin/models/x"])
async def test_admin_routes_are_absent_when_the_admin_api_is_off(path: str) -> None:
    app = Gateway(GatewayState(GatewayConfig()))
    status, _, body = await call(app, "GET", path)
    assert status == 404 and error_code(body) == "not_found"


@pytest.mark.security
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/admin/models"),
        ("GET", "/v1/admin/models"),
        ("GET", "/v1/admin/models/tiny-llama"),
        ("DELETE", "/v1/admin/models/tiny-llama"),
    ],
)
async def test_admin_refuses_no_key_401_and_a_key_without_the_scope_403(
    method: str, path: str
) -> None:
    app, store = make_admin_gateway()
    await load(app, {"uri": "builtin://tiny-llama"})
    body = json.dumps({"uri": "builtin://tiny-llama", "name": "other"}).encode()
    status, _, raw = await call(app, method, path, body)
    assert status == 401 and error_code(raw) == "invalid_api_key"
    status, _, raw = await call(app, method, path, body, USER)
    assert status == 403 and error_code(raw) == "insufficient_scope"
    assert set(store.objects) == {"tiny-llama"} and store.deleted == []


def test_admin_scope_is_never_granted_by_default() -> None:
    config = GatewayConfig.model_validate(
        {"auth": {"enabled": True, "keys": [{"name": "a", "sha256": hash_key(USER_KEY)}]}}
    )
    assert config.auth.keys[0].scopes == [] and config.admin.enabled is False


@pytest.mark.security
def test_admin_api_cannot_be_enabled_without_auth() -> None:
    with pytest.raises(ValidationError, match="admin.enabled needs auth.enabled"):
        GatewayConfig.model_validate({"admin": {"enabled": True}})


@pytest.mark.parametrize(
    "spec_change",
    [
        {"pools": [{"name": "a", "accelerator": "cpu", "minReplicas": 3, "maxReplicas": 1}]},
        {"accelerator": "tpu"},
        {"uri": "not a uri"},
        {"engineArgs": {"maxModelLen": 0}},
        {"aliases": ["ok", "ok"]},
    ],
)
async def test_admin_bad_spec_is_400_naming_the_field_as_render_does(
    spec_change: dict[str, Any],
) -> None:
    app, store = make_admin_gateway()
    request = {"uri": "builtin://tiny-llama", **spec_change}
    status, _, body = await load(app, request)
    assert status == 400 and store.objects == {}
    # render's words: the same document through the operator's own validation
    document = {
        "apiVersion": "modelgrid.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": "tiny-llama"},
        "spec": {
            "model": {"uri": request["uri"]},
            **{k: v for k, v in request.items() if k in ("aliases", "engineArgs", "pools")},
        },
    }
    if "pools" not in request:
        kind = request.get("accelerator", "cpu")
        document["spec"]["pools"] = [{"name": kind, "accelerator": kind}]
    with pytest.raises(InvalidModel) as refused:
        parse_model(document)
    first = refused.value.errors[0]
    assert body["error"]["param"] == first.path
    assert body["error"]["code"] == "invalid_spec"
    assert str(first) in body["error"]["message"]


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"uri": "builtin://tiny-llama", "namespace": "kube-system"}, "namespace"),
        ({"uri": "builtin://tiny-llama", "serviceAccount": "admin"}, "serviceAccount"),
        ({"name": "x"}, "uri"),
        ({"uri": 3}, "uri"),
        (
            {"uri": "builtin://tiny-llama", "accelerator": "cpu", "pools": []},
            "accelerator",
        ),
    ],
)
@pytest.mark.security
async def test_admin_refuses_fields_outside_the_load_request(
    request_body: dict[str, Any], param: str
) -> None:
    app, store = make_admin_gateway()
    status, _, body = await load(app, request_body)
    assert status == 400 and body["error"]["param"] == param and store.objects == {}


@pytest.mark.security
@pytest.mark.parametrize("body", [{"name": "llama"}, {"name": "mine", "aliases": ["llama"]}])
async def test_admin_refuses_a_name_another_model_serves(body: dict[str, Any]) -> None:
    app, store = make_admin_gateway()
    status, _, answer = await load(app, {"uri": "builtin://tiny-llama", **body})
    assert status == 409 and "'llama'" in answer["error"]["message"] and store.objects == {}


@pytest.mark.security
async def test_admin_bounds_how_many_models_it_keeps() -> None:
    app, _ = make_admin_gateway(max_models=1)
    assert (await load(app, {"uri": "builtin://tiny-llama", "name": "one"}))[0] == 202
    status, _, body = await load(app, {"uri": "builtin://tiny-llama", "name": "two"})
    assert status == 409 and "at most 1" in body["error"]["message"]


@pytest.mark.security
async def test_admin_body_over_64_kib_is_413() -> None:
    app, store = make_admin_gateway()
    body = {"uri": "builtin://tiny-llama", "aliases": ["a" * 200] * 400}
    assert (await load(app, body))[0] == 413 and store.objects == {}


@pytest.mark.security
async def test_admin_never_deletes_a_model_it_did_not_create() -> None:
    app, store = make_admin_gateway()
    await store.create(
        {"metadata": {"name": "team-model"}, "spec": {"model": {"uri": "org/m"}, "pools": []}}
    )
    status, _, body = await call(app, "DELETE", "/v1/admin/models/team-model", headers=ADMIN)
    assert status == 403 and "read-only" in json.loads(body)["error"]["message"]
    assert "team-model" in store.objects and store.deleted == []
    status, _, body = await call(app, "GET", "/v1/admin/models/team-model", headers=ADMIN)
    assert status == 200 and json.loads(body)["managed"] is False


@pytest.mark.parametrize("name", ["nope", "..", "a%2Fb", "Upper"])
async def test_admin_unknown_model_is_404(name: str) -> None:
    app, _ = make_admin_gateway()
    for method in ("GET", "DELETE"):
        status, _, body = await call(app, method, f"/v1/admin/models/{name}", headers=ADMIN)
        assert status == 404 and error_code(body) == "model_not_found"


async def test_admin_unload_withdraws_at_once_and_deletes_after_the_drain() -> None:
    app, store = make_admin_gateway()
    await load(app, {"uri": "builtin://tiny-llama", "name": "second"})
    state = app.state
    url = "http://127.0.0.1:10/v1"
    entry = ModelEntry(
        name="second", backends=(Backend(url=url),), source=store.source_of("second")
    )
    state.catalog.set_entries("kubernetes:models", [entry])  # as the watch reports it
    state.balancer.started(url)  # a stream in flight

    status, _, body = await call(app, "DELETE", "/v1/admin/models/second", headers=ADMIN)
    assert status == 202 and json.loads(body)["status"]["phase"] == "Unloading"
    assert "second" not in state.catalog.table.routes  # new requests: 404
    state.catalog.set_entries("kubernetes:models", [entry])  # the watch still reports it
    assert "second" not in state.catalog.table.routes
    status, _, body = await call(app, "GET", "/v1/admin/models/second", headers=ADMIN)
    assert json.loads(body)["status"]["phase"] == "Unloading"
    await asyncio.sleep(0.3)
    assert store.deleted == []  # the stream still runs

    state.balancer.finished(url, now=0.0)
    assert state.admin is not None
    await asyncio.wait_for(state.admin.wait_unloaded("second"), 5)
    assert store.deleted == [("second", "uid-second")]

    # loaded anew under the same name: routed again
    assert (await load(app, {"uri": "builtin://tiny-llama", "name": "second"}))[0] == 202
    state.catalog.set_entries("kubernetes:models", [entry])
    assert "second" in state.catalog.table.routes


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("builtin://tiny-llama", "tiny-llama"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3-1-8b-instruct"),
        ("/media/usb/Qwen2.tar.gz", "qwen2"),
        ("s3://bucket/models/8B/", "b"),
        ("/media/usb/123", "model"),
        ("org/" + "x" * 80, "x" * 40),
    ],
)
def test_admin_name_from_uri_is_a_resource_name(uri: str, name: str) -> None:
    assert name_from_uri(uri) == name


async def test_admin_reports_ready_only_once_the_gateway_routes_it() -> None:
    app, store = make_admin_gateway()
    await load(app, {"uri": "builtin://tiny-llama", "name": "second"})
    store.objects["second"]["status"] = {"phase": "Ready"}  # the operator says Ready
    shown = await call(app, "GET", "/v1/admin/models/second", headers=ADMIN)
    assert json.loads(shown[2])["status"]["phase"] == "Loading"  # the watch has not caught up
    backend = Backend(url="http://127.0.0.1:10/v1")
    entry = ModelEntry(name="second", backends=(backend,), source=store.source_of("second"))
    app.state.catalog.set_entries("kubernetes:models", [entry])
    shown = await call(app, "GET", "/v1/admin/models/second", headers=ADMIN)
    assert json.loads(shown[2])["status"]["phase"] == "Ready"


@pytest.mark.security
async def test_admin_calls_at_once_are_bounded() -> None:
    app, store = make_admin_gateway()
    release = asyncio.Event()
    listed = store.list

    async def slow_list() -> list[dict[str, Any]]:
        await release.wait()
        return await listed()

    store.list = slow_list  # type: ignore[method-assign]
    calls = [
        asyncio.create_task(call(app, "GET", "/v1/admin/models", headers=ADMIN))
        for _ in range(MAX_CALLS_IN_FLIGHT)
    ]
    await asyncio.sleep(0.05)
    status, headers, _ = await call(app, "GET", "/v1/admin/models", headers=ADMIN)
    assert status == 429 and headers["retry-after"] == "1"
    release.set()
    assert [c[0] for c in await asyncio.gather(*calls)] == [200] * MAX_CALLS_IN_FLIGHT
    assert (await call(app, "GET", "/v1/admin/models", headers=ADMIN))[0] == 200
