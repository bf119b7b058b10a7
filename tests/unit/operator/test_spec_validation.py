"""Every validation rule of the InferenceModel spec, with the message a user reads."""

from __future__ import annotations

import pytest
from factories import make_model, model_doc, pool
from modelgrid_operator import api
from modelgrid_operator.validation import InvalidModel, parse_model
from spec_cases import INVALID, SPEC_RULE_TYPES

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("case", "overrides", "path", "reason"), INVALID, ids=[c[0] for c in INVALID]
)
def test_spec_invalid_case_names_field_and_reason(case, overrides, path, reason):
    with pytest.raises(InvalidModel) as info:
        parse_model(model_doc(**overrides), source="m.yaml")
    errors = {e.path: e.reason for e in info.value.errors}
    assert path in errors, f"{case}: expected an error at {path}, got {errors}"
    assert reason in errors[path]


def test_spec_long_name_is_rejected_with_reason():
    doc = model_doc()
    doc["metadata"]["name"] = "x" * 41
    with pytest.raises(InvalidModel, match="at most 40 characters"):
        parse_model(doc)


def test_spec_wrong_kind_is_rejected():
    doc = model_doc()
    doc["kind"] = "Deployment"
    with pytest.raises(InvalidModel, match="expected kind InferenceModel"):
        parse_model(doc)


def test_spec_defaults_fill_in():
    model = make_model()
    assert model.served_model_name == "demo"
    assert model.spec.engine is api.Engine.AUTO
    assert model.spec.serving.max_concurrent_requests == 64
    assert model.spec.pools[0].replica_bounds == (1, 1)


def test_spec_scale_to_zero_keeps_a_maximum_of_one():
    model = make_model(pools=[pool(minReplicas=0)])
    assert model.spec.pools[0].replica_bounds == (0, 1)


@pytest.mark.parametrize(
    ("uri", "kind", "location"),
    [
        ("hf://org/m", api.SourceKind.HUGGING_FACE, "org/m"),
        ("org/m", api.SourceKind.HUGGING_FACE, "org/m"),
        ("s3://bucket/p", api.SourceKind.S3, "s3://bucket/p"),
        ("gs://bucket/p", api.SourceKind.GCS, "gs://bucket/p"),
        ("pvc://claim/dir/m", api.SourceKind.PVC, "pvc://claim/dir/m"),
        ("/models/m", api.SourceKind.PATH, "/models/m"),
        ("file:///models/m", api.SourceKind.PATH, "/models/m"),
        ("builtin://tiny-llama", api.SourceKind.BUILTIN, "tiny-llama"),
    ],
)
def test_source_kind_and_location(uri, kind, location):
    source = api.ModelSource(uri=uri)
    assert (source.kind, source.location) == (kind, location)


def test_engine_auto_picks_per_accelerator():
    model = make_model(pools=[pool("g", "nvidia"), pool("m", "apple"), pool("c", "cpu")])
    assert [model.spec.engine_for(p) for p in model.spec.pools] == [
        api.Engine.VLLM,
        api.Engine.MLX,
        api.Engine.VLLM,
    ]


def test_every_rule_has_a_message_and_a_field():
    for cls in SPEC_RULE_TYPES:
        for rule in cls.rules:
            assert rule.message and rule.cel and rule.field, (cls, rule)
