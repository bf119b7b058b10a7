"""What counts as drift between a live child and the rendered one."""

from __future__ import annotations

import pytest
from modelgrid_operator.drift import contains, drift_patch

pytestmark = pytest.mark.unit

DESIRED = {
    "metadata": {"labels": {"a": "1"}, "name": "x"},
    "spec": {"groups": [{"name": "g", "replicas": 1}], "version": "2"},
}


def test_drift_server_defaults_are_not_drift():
    live = {
        "metadata": {"labels": {"a": "1", "extra": "y"}, "resourceVersion": "9"},
        "spec": {
            "groups": [{"name": "g", "replicas": 1, "defaulted": True}],
            "version": "2",
            "suspend": False,
        },
        "status": {"x": 1},
    }
    assert drift_patch(live, DESIRED) is None


def test_drift_changed_field_patches_whole_spec():
    live = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"groups": [{"name": "g", "replicas": 5}], "version": "2"},
    }
    assert drift_patch(live, DESIRED) == {"spec": DESIRED["spec"]}


def test_drift_removed_label_is_restored():
    live = {"metadata": {"labels": {}}, "spec": DESIRED["spec"]}
    assert drift_patch(live, DESIRED) == {"metadata": {"labels": {"a": "1"}}}


def test_contains_lists_must_match_in_length():
    assert not contains([1, 2], [1])
    assert contains([{"a": 1, "b": 2}], [{"a": 1}])
