"""The committed CRD is what the typed API generates, and it has what kubectl needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelgrid_operator.crd import CRD_FILE, build_crd, render_crd_yaml
from spec_cases import SPEC_RULE_TYPES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def _schema() -> dict:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_crd_committed_file_is_current():
    committed = (ROOT / "crds" / CRD_FILE).read_text()
    assert committed == render_crd_yaml(), (
        "crds/ is stale: run `modelgrid crd > crds/" + CRD_FILE + "`"
    )


def test_crd_names_and_subresources():
    crd = build_crd()
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "InferenceModel",
        "inferencemodels",
        ["im"],
    )
    assert "modelgrid" in names["categories"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Model",
        "Engine",
        "Ready",
        "Phase",
        "Age",
    ]


def _walk(node: dict, path: str = ""):
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_crd_schema_is_structural_enough_for_the_api_server():
    for path, node in _walk(_schema()):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert node.get("additionalProperties") is not False, path
        if "properties" in node:
            assert "additionalProperties" not in node, path


def test_crd_spec_fields_are_documented():
    undocumented = [
        p
        for p, n in _walk(_schema()["properties"]["spec"], ".spec")
        if p != ".spec" and not p.endswith("[]") and "{" not in p and not n.get("description")
    ]
    assert undocumented == []


def test_crd_carries_every_cel_rule():
    in_crd = {
        (v["rule"], v["message"])
        for _, node in _walk(_schema())
        for v in node.get("x-kubernetes-validations", [])
    }
    for cls in SPEC_RULE_TYPES:
        for rule in cls.rules:
            assert (rule.cel, rule.message) in in_crd, rule.message


def test_crd_pool_list_is_a_map_keyed_by_name():
    pools = _schema()["properties"]["spec"]["properties"]["pools"]
    assert pools["x-kubernetes-list-type"] == "map"
    assert pools["x-kubernetes-list-map-keys"] == ["name"]
    assert pools["items"]["required"] == ["name", "accelerator"]
