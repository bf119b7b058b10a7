"""`modelgrid render` and `modelgrid crd` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from modelgrid_cli.main import main
from modelgrid_operator.crd import CRD_FILE
from modelgrid_operator.render import rayservice_name
from modelgrid_operator.validation import load_models

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_cli_render_prints_every_object_the_operator_creates(example, capsys):
    assert main(["render", str(example)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    expected = []
    for model in load_models(example):
        expected += [("RayService", rayservice_name(model.name, p.name)) for p in model.spec.pools]
        expected.append(("NetworkPolicy", model.name))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == expected
    assert yaml.safe_load(docs[0]["spec"]["serveConfigV2"])["applications"][0]["import_path"]


def _model_file(tmp_path, name: str, spec: dict) -> Path:
    """A file holding one InferenceModel ``name`` of ``spec``."""
    path = tmp_path / f"{name}.yaml"
    document = {
        "apiVersion": "modelgrid.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": name},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def _node_path_model(tmp_path, uri: str) -> Path:
    spec = {"model": {"uri": uri}, "pools": [{"name": "cpu", "accelerator": "cpu"}]}
    return _model_file(tmp_path, "local", spec)


def test_cli_render_refuses_node_paths_by_default_like_the_operator(tmp_path, capsys):
    path = _node_path_model(tmp_path, "/var/lib/kubelet")
    assert main(["render", str(path)]) == 2
    err = capsys.readouterr().err
    assert "spec.model.uri" in err and "allowed_host_paths" in err
    assert "Traceback" not in err


def test_cli_render_allow_host_path_renders_the_normalised_path(tmp_path, capsys):
    path = _node_path_model(tmp_path, "file:///models//tiny/./v1")
    assert main(["render", str(path), "--allow-host-path", "/models"]) == 0
    rayservice = next(yaml.safe_load_all(capsys.readouterr().out))
    volumes = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"][
        "volumes"
    ]
    assert {
        "name": "model",
        "hostPath": {"path": "/models/tiny/v1", "type": "Directory"},
    } in volumes


def test_cli_render_allow_host_path_does_not_allow_escaping_it(tmp_path, capsys):
    path = _node_path_model(tmp_path, "/models/../etc")
    assert main(["render", str(path), "--allow-host-path", "/models"]) == 2
    assert "'..'" in capsys.readouterr().err


def test_cli_crd_equals_committed_file(capsys):
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == (ROOT / "crds" / CRD_FILE).read_text()


def test_cli_render_invalid_file_names_path_and_reason_without_traceback(tmp_path, capsys):
    pools = [{"name": "p", "accelerator": "cpu", "minReplicas": 3, "maxReplicas": 1}]
    bad = _model_file(tmp_path, "m", {"model": {"uri": "org/m"}, "pools": pools})
    assert main(["render", str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"modelgrid: {bad}: spec.pools[0].minReplicas: minReplicas must not exceed maxReplicas"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("a: [1", "not valid YAML"),
        ("", "no InferenceModel in the file"),
        ("kind: Pod\napiVersion: v1\n", "expected kind InferenceModel"),
    ],
)
def test_cli_render_unreadable_inputs(tmp_path, capsys, content, reason):
    path = tmp_path / "m.yaml"
    path.write_text(content)
    assert main(["render", str(path)]) == 2
    assert reason in capsys.readouterr().err


def test_cli_render_missing_file(capsys):
    assert main(["render", "nope.yaml"]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err


def test_cli_gateway_passes_every_namespace(monkeypatch):
    from modelgrid_cli.spec_check import check_spec
    from modelgrid_serving import gateway

    seen = {}
    monkeypatch.setattr(gateway, "serve", lambda config, **kw: seen.update(kw, config=config))
    assert main(["gateway", "--kubernetes", "--namespace", "a", "--namespace", "b"]) == 0
    assert seen == {
        "config": None,
        "host": "127.0.0.1",
        "port": 8080,
        "kubernetes": True,
        "namespaces": ("a", "b"),
        "metrics_port": None,
        "check_spec": check_spec,  # the admin API's loads checked by the typed spec
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), 8001),
        (("--port", "9000"), 9001),
        (("--console-port", "7000"), 7000),
        (("--console-port", "0"), None),
    ],
)
def test_cli_up_puts_the_console_beside_the_api(monkeypatch, args, expected):
    """One pool: the web console (a gateway in front of the replica) on --port + 1 by default."""
    from modelgrid_serving import local

    seen = {}
    monkeypatch.setattr(local, "serve", lambda config, **kw: seen.update(kw, config=config))
    path = ROOT / "examples" / "mlx-tiny.yaml"
    monkeypatch.setattr("modelgrid_serving.tiny_model.write_tiny_model", lambda d: d)
    assert main(["up", str(path), *args]) == 0
    assert seen["console_port"] == expected
    assert len(seen["config"].pools) == 1
