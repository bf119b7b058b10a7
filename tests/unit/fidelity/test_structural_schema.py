"""Our generated CRD is one the API server accepts: a valid v1 CRD with a structural schema.

The checker (:mod:`fidelity_support.structural`) is itself tested both ways: KubeRay's
controller-gen output passes it, and each broken schema below is reported.
"""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from fidelity_support.kuberay import RAYCLUSTERS, RAYSERVICES, kuberay_crd
from fidelity_support.structural import crd_violations, violations
from fidelity_support import SUPPORTED_KUBERNETES
from modelgrid_operator.crd import CRD_FILE, build_crd

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_structural_generated_crd_has_no_violations():
    assert crd_violations(build_crd()) == []


def test_structural_committed_crd_has_no_violations():
    assert crd_violations(yaml.safe_load((ROOT / "crds" / CRD_FILE).read_text())) == []


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES)
def test_structural_crd_object_validates_strictly_as_apiextensions_v1(version):
    kubernetes_validate.validate(build_crd(), version, strict=True)


@pytest.mark.parametrize("name", [RAYSERVICES, RAYCLUSTERS])
def test_structural_checker_accepts_kuberays_controller_gen_crds(name):
    """No false alarms on a large real-world schema (int-or-string, list maps, CEL)."""
    assert crd_violations(kuberay_crd(name)) == []


def _root(**spec_properties) -> dict:
    return {
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": spec_properties},
        },
    }


def _pools(items: dict, **extensions) -> dict:
    return {"type": "array", "items": items, **extensions}


POOL_ITEM = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
}

BROKEN = [
    # (case, schema, fragment of the expected finding)
    ("untyped node", _root(replicas={"description": "no type"}), "type is missing"),
    ("unknown type", _root(replicas={"type": "int"}), "unknown type 'int'"),
    ("root not object", {"type": "array", "items": {"type": "string"}}, "type must be object"),
    ("array without items", _root(names={"type": "array"}), "arrays must have items"),
    ("properties with additionalProperties",
     _root(env={"type": "object", "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"}}),
     "mutually exclusive"),
    ("additionalProperties false",
     _root(env={"type": "object", "additionalProperties": False}), "cannot be false"),
    ("ref", _root(env={"$ref": "#/definitions/Env"}), "$ref is not supported"),
    ("uniqueItems", _root(names={"type": "array", "items": {"type": "string"},
                                 "uniqueItems": True}), "uniqueItems cannot be true"),
    ("items list", _root(names={"type": "array", "items": [{"type": "string"}]}),
     "items must be a single schema"),
    ("type inside anyOf", _root(size={"type": "integer", "anyOf": [{"type": "string"}]}),
     "must not be set inside"),
    ("default inside oneOf",
     _root(size={"type": "integer", "oneOf": [{"minimum": 1, "default": 2}]}),
     "default must not be set inside"),
    ("required but not a property",
     _root(pool={"type": "object", "required": ["nmae"],
                 "properties": {"name": {"type": "string"}}}),
     "required field 'nmae' is not a property"),
    ("list-type on an object", _root(env={"type": "object", "x-kubernetes-list-type": "set"}),
     "only on arrays"),
    ("set of objects", _root(pools=_pools(POOL_ITEM, **{"x-kubernetes-list-type": "set"})),
     "set needs scalar"),
    ("map without keys", _root(pools=_pools(POOL_ITEM, **{"x-kubernetes-list-type": "map"})),
     "needs x-kubernetes-list-map-keys"),
    ("map of scalars", _root(pools=_pools({"type": "string"}, **{
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})),
     "map needs object items"),
    ("map key not required",
     _root(pools=_pools({**POOL_ITEM, "required": []}, **{
         "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})),
     "must be required or defaulted"),
    ("map key missing",
     _root(pools=_pools(POOL_ITEM, **{
         "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]})),
     "list map key 'id' is not a property"),
    ("map keys without map", _root(pools=_pools(POOL_ITEM, **{
        "x-kubernetes-list-map-keys": ["name"]})), "needs x-kubernetes-list-type map"),
    ("map-type on a string", _root(name={"type": "string", "x-kubernetes-map-type": "atomic"}),
     "x-kubernetes-map-type"),
    ("int-or-string with a type",
     _root(cpu={"type": "string", "x-kubernetes-int-or-string": True}),
     "must not have a type"),
    ("preserve false", _root(args={"type": "object",
                                   "x-kubernetes-preserve-unknown-fields": False}),
     "must be true or absent"),
    ("default of the wrong type", _root(size={"type": "integer", "default": "two"}),
     "default does not validate"),
    ("default out of range",
     _root(size={"type": "integer", "minimum": 1, "default": 0}), "default does not validate"),
    ("default with pruned fields",
     _root(pool={"type": "object", "properties": {"name": {"type": "string"}},
                 "default": {"name": "a", "nmae": "b"}}),
     "default has fields the schema prunes"),
    ("numeric exclusiveMinimum",
     _root(frac={"type": "number", "exclusiveMinimum": 0}), "must be a boolean"),
    ("pattern not RE2", _root(name={"type": "string", "pattern": "^(?=a)b$"}), "not RE2"),
    ("unknown format", _root(name={"type": "string", "format": "dns-label"}),
     "unknown format"),
    ("CEL that does not compile",
     _root(pool={**POOL_ITEM, "x-kubernetes-validations": [
         {"rule": "self.size >", "message": "m"}]}),
     "does not compile"),
    ("fieldPath to nothing",
     _root(pool={**POOL_ITEM, "x-kubernetes-validations": [
         {"rule": "self.size > 0", "message": "m", "fieldPath": ".sise"}]}),
     "names no property"),
    ("metadata restricted beyond name",
     {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
         "labels": {"type": "object"}}}}},
     "only name and generateName"),
    ("metadata name default",
     {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
         "name": {"type": "string", "default": "x"}}}}},
     "must be a string without default"),
]


@pytest.mark.parametrize(("case", "schema", "fragment"), BROKEN, ids=[c[0] for c in BROKEN])
def test_structural_checker_reports_broken_schema(case, schema, fragment):
    found = violations(schema)
    assert any(fragment in finding for finding in found), f"{case}: {found}"


def test_structural_checker_reports_a_break_in_our_own_crd():
    crd = copy.deepcopy(build_crd())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["pools"]["items"]["required"]  # the list-map key `name`
    assert crd_violations(crd) == [
        "v1alpha1: .spec.pools: list map key 'name' must be required or defaulted"
    ]
