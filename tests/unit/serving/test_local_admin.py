"""Models loaded into a running ``modelgrid up``: phases, times and failures of a load, as the
gateway reads them (no Ray: deploy and undeploy are doubles that record what they were asked)."""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

import pytest
from modelgrid_cli import hosting
from modelgrid_cli.up_admin import admin_key_path, make_admin_key, plan_load
from modelgrid_serving.gateway.auth import ANONYMOUS, KeyRing, hash_key
from modelgrid_serving.gateway.config import KeyConfig
from modelgrid_serving.gateway.sources import entries_from_inferencemodels
from modelgrid_serving.local_admin import LocalModels

pytestmark = pytest.mark.unit


def document(name: str = "second", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelgrid.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "x"}},
        "spec": {
            "model": {"uri": "builtin://tiny-llama"},
            "pools": [{"name": "cpu", "accelerator": "cpu"}],
            **spec,
        },
    }


class Machine:
    """Deploys as told, on a clock the test moves."""

    def __init__(self, tmp_path: Any, fail: str | None = None) -> None:
        self.now = 1000.0
        self.deployed: list[tuple[str, str]] = []
        self.removed: list[str] = []
        self.fail = fail
        self.root = tmp_path

    def plan(self, doc: dict[str, Any]) -> Any:
        return plan_load(doc, builtin_root=self.root)

    def deploy(self, app: Any, name: str, prefix: str) -> str:
        self.now += 12.5  # the engine starts
        if self.fail:
            raise SystemExit(self.fail)
        self.deployed.append((name, prefix))
        return f"http://127.0.0.1:9000{prefix}"

    def undeploy(self, name: str) -> None:
        self.removed.append(name)

    def models(self) -> LocalModels:
        return LocalModels(self.plan, self.deploy, self.undeploy, clock=lambda: self.now)


def test_local_load_deploys_each_pool_under_its_prefix_and_reports_ready(tmp_path):
    machine = Machine(tmp_path)
    models = machine.models()
    status, body = models.load(document(aliases=["tiny"]), background=False)
    assert status == 202 and body["metadata"]["namespace"] == "local"
    assert machine.deployed == [("admin-second-cpu", "/models/second/cpu")]
    stored = models.get("second")
    assert stored is not None
    state = stored["status"]
    assert state["phase"] == "Ready" and state["servedModelNames"] == ["second", "tiny"]
    assert state["timeToReady"] == {"pending": 0.0, "loading": 12.5, "total": 12.5}
    assert state["pools"][0]["endpoint"] == "http://127.0.0.1:9000/models/second/cpu"
    # the gateway routes it as it routes a cluster's model
    (entry,) = entries_from_inferencemodels(models.list())
    assert entry.name == "second" and entry.aliases == ("tiny",)
    assert [(b.url, b.ready) for b in entry.backends] == [
        ("http://127.0.0.1:9000/models/second/cpu/v1", True)
    ]
    assert (tmp_path / "tiny-llama" / "config.json").is_file()  # the built-in model written

    assert models.delete("second") is True
    assert machine.removed == ["admin-second-cpu"] and models.list() == []
    assert models.delete("second") is False


def test_local_load_that_fails_reports_failed_with_the_reason_and_removes_it(tmp_path):
    machine = Machine(tmp_path, fail="modelgrid: warm-up request failed: HTTP 500")
    models = machine.models()
    models.load(document(), background=False)
    stored = models.get("second")
    assert stored is not None
    status = stored["status"]
    assert status["phase"] == "Failed" and status["pools"] == []
    assert status["conditions"][0]["message"] == "modelgrid: warm-up request failed: HTTP 500"
    assert machine.removed == ["admin-second-cpu"]
    (entry,) = entries_from_inferencemodels(models.list())
    assert entry.backends == ()  # known, not routed: 503, not 404


def test_local_load_refuses_a_name_in_use_and_what_cannot_run_here(tmp_path):
    models = Machine(tmp_path).models()
    assert models.load(document(), background=False)[0] == 202
    status, body = models.load(document(), background=False)
    assert status == 409 and body["error"]["code"] == "conflict"
    pvc = document("other", model={"uri": "pvc://claim/models/x"})
    status, body = models.load(pvc, background=False)
    assert status == 400 and "PersistentVolumeClaim" in body["error"]["message"]
    missing = document("third", model={"uri": str(tmp_path / "nowhere")})
    status, body = models.load(missing, background=False)
    assert status == 400 and "does not exist" in body["error"]["message"]
    assert [m["metadata"]["name"] for m in models.list()] == ["second"]


def test_local_unload_during_a_deploy_waits_for_it_then_removes_it(tmp_path):
    machine = Machine(tmp_path)
    started, release = threading.Event(), threading.Event()

    def slow_deploy(app: Any, name: str, prefix: str) -> str:
        started.set()
        release.wait(5)
        return machine.deploy(app, name, prefix)

    models = LocalModels(machine.plan, slow_deploy, machine.undeploy, clock=lambda: machine.now)
    models.load(document())
    assert started.wait(5)
    assert models.get("second")["status"]["phase"] == "Loading"  # type: ignore[index]
    deleting = threading.Thread(target=models.delete, args=("second",))
    deleting.start()
    release.set()
    deleting.join(5)
    assert machine.removed == ["admin-second-cpu"] and models.list() == []


@pytest.mark.security
def test_anonymous_with_auth_on_may_use_models_and_only_the_admin_key_may_load():
    key = KeyConfig(name="admin", sha256=hash_key("sk-1"), scopes=["admin"])
    ring = KeyRing([key], enabled=True, anonymous=True)
    assert ring.authenticate(None) is ANONYMOUS and not ANONYMOUS.admin
    assert ring.authenticate(b"Bearer unused") is ANONYMOUS  # what OpenAI clients send
    assert ring.authenticate(b"Bearer sk-1").admin
    strict = KeyRing([key], enabled=True)
    with pytest.raises(Exception, match="Incorrect API key"):
        strict.authenticate(b"Bearer unused")


@pytest.mark.security
def test_up_admin_key_is_readable_by_this_user_only_and_found_by_load(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELGRID_CACHE", str(tmp_path))
    monkeypatch.delenv("MODELGRID_API_KEY", raising=False)
    key, path = make_admin_key(8123)
    assert path == admin_key_path(8123) and path.read_text() == key + "\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert make_admin_key(8123)[0] != key  # a new run, a new key
    parser_args = type("Args", (), {"gateway": "http://127.0.0.1:8123", "api_key_file": None})()
    client = hosting.admin_client(parser_args)  # type: ignore[arg-type]
    assert client.headers["authorization"] == f"Bearer {path.read_text().strip()}"
    remote = type("Args", (), {"gateway": "https://llm.example.com:8123", "api_key_file": None})()
    assert hosting.admin_client(remote).headers == {}  # type: ignore[arg-type]
