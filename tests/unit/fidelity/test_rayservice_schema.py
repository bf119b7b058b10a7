"""Every RayService we render is one KubeRay's CRD accepts, field for field.

Validation is *strict*: a field KubeRay's schema does not name fails the test, because on a
cluster it would be pruned without a word (a misspelled ``rayStartParams`` simply vanishes).
The pod templates inside are core ``PodTemplateSpec``s: they are also checked with
kubernetes-validate, strictly, against the oldest and newest Kubernetes versions we support.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from fidelity_support.admission import admit, crd_schema
from fidelity_support.kuberay import RAYSERVICES, kuberay_crd
from fidelity_support.openapi import schema_errors
from fidelity_support import SUPPORTED_KUBERNETES
from modelgrid_operator.render import rayservice as rayservice_module
from modelgrid_operator.render import render_rayservices
from modelgrid_operator.settings import RenderSettings
from modelgrid_operator.validation import load_models

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
OWNER = {"name": "owner", "uid": "0b7f3a52-8f1e-4a57-9c1e-2f1d0c9e5a11"}


def _rayservice_schema() -> dict[str, Any]:
    return crd_schema(kuberay_crd(RAYSERVICES), "v1")


def _rendered(path: Path) -> list[dict[str, Any]]:
    return [
        rayservice
        for model in load_models(path)
        for rayservice in render_rayservices(
            model, settings=RenderSettings(), owner={**OWNER, "name": model.name}
        )
    ]


def _pod_templates(rayservice: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    return [("head", cluster["headGroupSpec"]["template"])] + [
        (group["groupName"], group["template"]) for group in cluster["workerGroupSpecs"]
    ]


def kuberay_errors(rayservice: dict[str, Any]) -> list[tuple[str, str]]:
    """Strict schema errors plus what the API server itself would refuse (CEL, duplicates)."""
    schema = _rayservice_schema()
    return schema_errors(rayservice, schema, strict=True) + admit(rayservice, schema).errors


def pod_template_errors(template: dict[str, Any], version: str) -> str | None:
    """kubernetes-validate's strict verdict on a PodTemplateSpec, wrapped in a PodTemplate."""
    wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
               "metadata": {"name": "template"}, "template": template}
    try:
        kubernetes_validate.validate(wrapped, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_rayservice_from_example_validates_strictly_against_kuberay(path):
    for rayservice in _rendered(path):
        assert kuberay_errors(rayservice) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_rayservice_from_example_loses_nothing_to_pruning(path):
    for rayservice in _rendered(path):
        result = admit(rayservice, _rayservice_schema())
        assert result.pruned == []


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES)
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_rayservice_pod_templates_validate_strictly_as_core_objects(path, version):
    for rayservice in _rendered(path):
        for group, template in _pod_templates(rayservice):
            assert pod_template_errors(template, version) is None, group


# A deliberately broken renderer must be caught. -------------------------------------------


def _misspell(mapping: dict[str, Any], key: str, wrong: str) -> None:
    mapping[wrong] = mapping.pop(key)


def test_rayservice_misspelled_worker_group_field_is_caught(monkeypatch):
    real = rayservice_module._worker_group

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        group = real(*args, **kwargs)
        _misspell(group, "rayStartParams", "rayStartParam")
        return group

    monkeypatch.setattr(rayservice_module, "_worker_group", broken)
    errors = kuberay_errors(_rendered(ROOT / "examples" / "cpu-tiny.yaml")[0])
    assert any("rayStartParam" in message for _, message in errors), errors
    assert admit(_rendered(ROOT / "examples" / "cpu-tiny.yaml")[0], _rayservice_schema()).pruned


def test_rayservice_misspelled_cluster_field_is_caught(monkeypatch):
    real = rayservice_module.render_rayservice

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        rendered = real(*args, **kwargs)
        _misspell(rendered["spec"]["rayClusterConfig"], "workerGroupSpecs", "workerGroupSpec")
        return rendered

    monkeypatch.setattr(rayservice_module, "render_rayservice", broken)
    model = next(load_models(ROOT / "examples" / "cpu-tiny.yaml"))
    errors = kuberay_errors(
        rayservice_module.render_rayservice(model, model.spec.pools[0], settings=RenderSettings())
    )
    assert [path for path, _ in errors] == ["spec.rayClusterConfig"]
    assert "workerGroupSpec" in errors[0][1]


def test_rayservice_wrong_type_is_caught():
    rendered = copy.deepcopy(_rendered(ROOT / "examples" / "cpu-tiny.yaml")[0])
    rendered["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "1"
    assert ("spec.rayClusterConfig.workerGroupSpecs[0].replicas", "'1' is not of type 'integer'") \
        in kuberay_errors(rendered)


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES)
def test_rayservice_misspelled_pod_field_is_caught(monkeypatch, version):
    real = rayservice_module.worker_pod

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        pod = real(*args, **kwargs)
        _misspell(pod["spec"]["containers"][0], "volumeMounts", "volumeMount")
        return pod

    monkeypatch.setattr(rayservice_module, "worker_pod", broken)
    rendered = _rendered(ROOT / "examples" / "cpu-tiny.yaml")[0]
    _, template = _pod_templates(rendered)[1]
    assert "volumeMount" in (pod_template_errors(template, version) or "")
    assert any("volumeMount" in message for _, message in kuberay_errors(rendered))
