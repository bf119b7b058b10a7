"""The API-server emulation the fidelity tests rely on behaves as the API server does."""

from __future__ import annotations

import pytest

from fidelity_support.admission import admit
from fidelity_support.cel import rule_failures

pytestmark = pytest.mark.unit

POOL = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "size": {"type": "integer", "default": 1, "minimum": 0},
        "max": {"type": "integer"},
    },
    "x-kubernetes-validations": [
        {"rule": "!has(self.max) || self.size <= self.max", "message": "size above max",
         "fieldPath": ".size"},
    ],
}
SCHEMA = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "pools": {"type": "array", "items": POOL, "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"]},
                "args": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
    },
}


def test_admission_support_prunes_nested_unknown_fields_and_keeps_preserved_ones():
    result = admit({"metadata": {"name": "x"}, "spec": {
        "pools": [{"name": "a", "sise": 3}], "args": {"anything": {"goes": 1}}}}, SCHEMA)
    assert result.accepted
    assert result.pruned == ["spec.pools[0].sise"]
    assert result.stored["spec"]["args"] == {"anything": {"goes": 1}}


def test_admission_support_applies_defaults_before_cel_and_drops_nulls():
    result = admit({"spec": {"pools": [{"name": "a", "max": 0, "size": None}]}}, SCHEMA)
    assert result.stored["spec"]["pools"] == [{"name": "a", "max": 0, "size": 1}]
    assert result.errors == [("spec.pools[0].size", "size above max")]


def test_admission_support_reports_schema_errors_and_duplicates():
    result = admit({"spec": {"pools": [{"name": "a", "size": -1}, {"name": "a"}]}}, SCHEMA)
    assert [path for path, _ in result.errors] == ["spec.pools[0].size", "spec.pools[1]"]


def test_admission_support_cel_without_has_fails_on_an_absent_field():
    """As on the API server: reading a field that is not there is an error, not false."""
    node = {"type": "object", "properties": {"max": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.max > 0", "message": "max must be > 0"}]}
    (failure,) = rule_failures({}, node)
    assert failure.message.startswith("max must be > 0 (evaluation error")
    assert rule_failures({"max": 1}, node) == []


def test_admission_support_skips_transition_rules_on_create():
    node = {"type": "string", "x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": "immutable"}]}
    assert rule_failures("x", node) == []
