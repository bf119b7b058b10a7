"""InferenceModels meet the generated CRD the way they meet an API server.

Each document is pruned, defaulted, validated against the ``openAPIV3Schema`` with jsonschema
and checked with every CEL rule by a real CEL implementation (cel-python). The examples must be
stored unchanged; each invalid case of the API tests must be refused at the field the Python
validation names, and where Python gives a rule's message the API server gives the same words.
Finally every :class:`~modelgrid_operator.api.Rule` is run both ways on a table of cases, so the
CEL and the Python of one rule cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from factories import model_doc, pool

from fidelity_support.admission import Admission, admit, crd_schema
from modelgrid_operator import api
from modelgrid_operator.crd import build_crd
from modelgrid_operator.render import render_rayservice
from modelgrid_operator.settings import RenderSettings
from modelgrid_operator.status import Observation, compute_status, invalid_status
from modelgrid_operator.validation import InvalidModel, parse_model
from spec_cases import INVALID

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SCHEMA = crd_schema(build_crd())
RULE_MESSAGES = {
    rule.message
    for cls in vars(api).values()
    if isinstance(cls, type) and issubclass(cls, api._Object)
    for rule in cls.rules
}


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _python_errors(document: dict) -> dict[str, str]:
    try:
        parse_model(document)
    except InvalidModel as exc:
        return {e.path: e.reason for e in exc.errors}
    return {}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_admission_example_is_accepted_and_stored_unpruned(path):
    for document in _documents(path):
        result = admit(document, SCHEMA)
        assert result.errors == [], f"{path.name}: {result.errors}"
        assert result.pruned == []


def _subset(part, whole) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and _subset(v, whole[k]) for k, v in part.items())
    if isinstance(part, list):
        return isinstance(whole, list) and len(part) == len(whole) and all(
            _subset(a, b) for a, b in zip(part, whole, strict=True))
    return part == whole


@pytest.mark.parametrize("overrides", [
    {},
    {"engineArgs": {}, "serving": {}, "pools": [pool(accelerator="cpu", resources={})]},
])
def test_admission_schema_defaults_are_the_python_defaults(overrides):
    """What the API server stores and what the operator parses mean the same spec."""
    document = model_doc(**overrides)
    stored = admit(document, SCHEMA).stored["spec"]
    assert stored != document["spec"], "no schema default was applied"
    parsed = parse_model(document).spec.model_dump(by_alias=True, mode="json")
    assert _subset(stored, parsed), (stored, parsed)


def _refused_at(result: Admission, path: str) -> list[str]:
    """Messages at ``path`` or at one of its list items (duplicates, item patterns)."""
    return [message for where, message in result.errors
            if where == path or where.startswith(path + "[")]


VALID_AFTER_PRUNING = {"unknown field"}
"""The API server prunes unknown fields (kubectl's strict field validation aside), where the
Python validation refuses them."""


@pytest.mark.parametrize(("case", "overrides", "path", "reason"), INVALID,
                         ids=[c[0] for c in INVALID])
def test_admission_invalid_case_is_refused_at_the_same_field(case, overrides, path, reason):
    document = model_doc(**overrides)
    python = _python_errors(document)
    assert reason in python.get(path, ""), f"{case}: Python said {python}"
    result = admit(document, SCHEMA)
    if case in VALID_AFTER_PRUNING:
        assert result.accepted, result.errors
        assert result.pruned == [path]
        assert path.rsplit(".", 1)[-1] not in result.stored["spec"]
        return
    refused = _refused_at(result, path)
    assert refused, f"{case}: the API server refuses nothing at {path}: {result.errors}"
    if python[path] in RULE_MESSAGES:
        assert python[path] in refused, f"{case}: CEL said {refused}"


def test_admission_metadata_name_rule_gives_the_python_message():
    document = model_doc()
    document["metadata"]["name"] = "x" * 41
    (python,) = _python_errors(document).values()
    assert python.startswith("metadata.name ")  # the field is named in the error
    assert [m for _, m in admit(document, SCHEMA).errors] == [python]


@pytest.mark.parametrize("name", ["demo.v2", "8b-chat", "x" * 41, "x" * 48, "Demo", "demo-"])
def test_admission_metadata_name_kuberay_refuses_is_refused_by_both(name):
    """KubeRay's ``ValidateRayServiceMetadata`` (utils/validation.go, v1.6/v1.7) refuses a
    RayService name that is no DNS-1035 label (``8b-chat``: a leading digit) or is longer than
    47 characters, and then never reconciles it: the model's name begins each pool's
    RayService name, so both the API server and Python refuse such a name up front."""
    document = model_doc()
    document["metadata"]["name"] = name
    assert _python_errors(document) == {"": api.RESOURCE_NAME.message}
    assert [m for _, m in admit(document, SCHEMA).errors] == [api.RESOURCE_NAME.message]


_REVISION = "revision applies only to Hugging Face model ids"
_PVC = "pvc:// URIs name a PersistentVolumeClaim: pvc://<claim-name>/<path in volume>"
_GPUS = ("GPUs are derived from engineArgs (tensorParallelSize x pipelineParallelSize); "
         "do not set nvidia.com/gpu in resources")
_MIN_MAX = "minReplicas must not exceed maxReplicas"
_TARGET = "targetConcurrentRequests must not exceed maxConcurrentRequests"
_VLLM_APPLE = "engine vllm cannot run on apple pools; use engine mlx or auto"
_MLX_NVIDIA = "engine mlx cannot run on nvidia pools; use engine vllm or auto"
_PARALLEL = "tensorParallelSize and pipelineParallelSize above 1 need every pool to be nvidia"
_ALIASES = "aliases must differ from servedModelName"
_NAME = api.RESOURCE_NAME.message
_TEMPLATE = "chatTemplate takes exactly one of inline and configMapRef"

RULE_CASES = [
    # (rule message, whether the rule breaks, spec overrides)
    (_REVISION, False, {"model": {"uri": "hf://org/m", "revision": "main"}}),
    (_REVISION, False, {"model": {"uri": "org/m", "revision": "v1.0"}}),
    (_REVISION, False, {"model": {"uri": "s3://bucket/m"}}),
    (_REVISION, True, {"model": {"uri": "s3://bucket/m", "revision": "main"}}),
    (_REVISION, True, {"model": {"uri": "gs://bucket/m", "revision": "main"}}),
    (_REVISION, True, {"model": {"uri": "/models/m", "revision": "main"}}),
    (_REVISION, True, {"model": {"uri": "file:///models/m", "revision": "main"}}),
    (_REVISION, True, {"model": {"uri": "builtin://tiny-llama", "revision": "main"}}),
    (_PVC, False, {"model": {"uri": "pvc://claim/dir/m"}}),
    (_PVC, False, {"model": {"uri": "pvc://claim-1"}}),
    (_PVC, True, {"model": {"uri": "pvc://Claim/m"}}),
    (_PVC, True, {"model": {"uri": "pvc://-claim/m"}}),
    (_GPUS, False, {"pools": [pool(resources={"requests": {"cpu": 2},
                                              "limits": {"memory": "8Gi"}})]}),
    (_GPUS, True, {"pools": [pool(resources={"requests": {"nvidia.com/gpu": 1}})]}),
    (_GPUS, True, {"pools": [pool(resources={"limits": {"nvidia.com/gpu": "2"}})]}),
    (_MIN_MAX, False, {"pools": [pool(minReplicas=2, maxReplicas=2)]}),
    (_MIN_MAX, False, {"pools": [pool(minReplicas=5)]}),
    (_MIN_MAX, False, {"pools": [pool(minReplicas=0, maxReplicas=1)]}),
    (_MIN_MAX, True, {"pools": [pool(minReplicas=3, maxReplicas=2)]}),
    (_MIN_MAX, True, {"pools": [pool(maxReplicas=1), pool("b", minReplicas=2, maxReplicas=1)]}),
    (_TARGET, False, {"serving": {"maxConcurrentRequests": 8, "targetConcurrentRequests": 8}}),
    (_TARGET, False, {"serving": {"targetConcurrentRequests": 64}}),
    (_TARGET, True, {"serving": {"targetConcurrentRequests": 65}}),
    (_TARGET, True, {"serving": {"maxConcurrentRequests": 4, "targetConcurrentRequests": 5}}),
    (_VLLM_APPLE, False, {"engine": "vllm", "pools": [pool(accelerator="cpu")]}),
    (_VLLM_APPLE, False, {"engine": "auto", "pools": [pool(accelerator="apple")]}),
    (_VLLM_APPLE, True, {"engine": "vllm", "pools": [pool(), pool("m", "apple")]}),
    (_MLX_NVIDIA, False, {"engine": "mlx", "pools": [pool("m", "apple"), pool("c", "cpu")]}),
    (_MLX_NVIDIA, True, {"engine": "mlx", "pools": [pool("m", "apple"), pool()]}),
    (_PARALLEL, False, {"engineArgs": {"tensorParallelSize": 4, "pipelineParallelSize": 2}}),
    (_PARALLEL, False, {"engineArgs": {"dtype": "float32"}, "pools": [pool(accelerator="cpu")]}),
    (_PARALLEL, True, {"engineArgs": {"pipelineParallelSize": 2},
                       "pools": [pool(accelerator="cpu")]}),
    (_PARALLEL, True, {"engineArgs": {"tensorParallelSize": 2},
                       "pools": [pool(), pool("m", "apple")]}),
    (_ALIASES, False, {"servedModelName": "m", "aliases": ["n", "o"]}),
    (_ALIASES, False, {"aliases": ["demo"]}),
    (_ALIASES, False, {"servedModelName": "m"}),
    (_ALIASES, True, {"servedModelName": "m", "aliases": ["n", "m"]}),
    (_TEMPLATE, False, {"chatTemplate": {"inline": "{{ messages }}"}}),
    (_TEMPLATE, False, {"chatTemplate": {"configMapRef": {"name": "t", "key": "k"}}}),
    (_TEMPLATE, True, {"chatTemplate": {}}),
    (_TEMPLATE, True, {"chatTemplate": {"inline": "x",
                                        "configMapRef": {"name": "t", "key": "k"}}}),
    # "metadata" replaces the document's metadata (the name rule is the resource's).
    (_NAME, False, {"metadata": {"name": "a"}}),
    (_NAME, False, {"metadata": {"name": "llama-3-8b-" + "x" * 29}}),
    (_NAME, True, {"metadata": {"name": "8b-chat"}}),
    (_NAME, True, {"metadata": {"name": "-chat"}}),
    (_NAME, True, {"metadata": {"name": "a" * 41}}),
]


def _case_document(overrides: dict) -> dict:
    """A document from a rule case: spec overrides, and metadata when the case names it."""
    spec = {k: v for k, v in overrides.items() if k != "metadata"}
    document = model_doc(**spec)
    document["metadata"] = {**document["metadata"], **overrides.get("metadata", {})}
    return document


@pytest.mark.parametrize(("message", "breaks", "overrides"), RULE_CASES,
                         ids=[f"{c[0][:24]}-{'breaks' if c[1] else 'holds'}" for c in RULE_CASES])
def test_admission_cel_and_python_agree_on_rule(message, breaks, overrides):
    document = _case_document(overrides)
    python_breaks = message in _python_errors(document).values()
    cel_breaks = message in [m for _, m in admit(document, SCHEMA).errors]
    assert (python_breaks, cel_breaks) == (breaks, breaks)


def test_admission_rule_table_covers_every_rule_both_ways():
    covered = {(message, breaks) for message, breaks, _ in RULE_CASES}
    missing = {(m, b) for m in RULE_MESSAGES for b in (True, False)} - covered
    assert not missing, f"add RULE_CASES for: {sorted(missing)}"


def test_admission_every_rule_of_the_api_is_in_the_crd():
    crd_rules = set()

    def walk(node: dict) -> None:
        crd_rules.update(r["message"] for r in node.get("x-kubernetes-validations", []))
        for child in (node.get("properties") or {}).values():
            walk(child)
        if isinstance(node.get("items"), dict):
            walk(node["items"])

    walk(SCHEMA)
    assert RULE_MESSAGES <= crd_rules


def _status_as_written(status: api.InferenceModelStatus) -> dict:
    return status.model_dump(by_alias=True, mode="json")  # as reconcile.py writes it


def _without_nulls(value):
    """A merge patch deletes null fields, and the API server drops them from objects."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@pytest.mark.parametrize("rendered", [False, True], ids=["no-rayservice", "rayservice"])
def test_admission_status_the_operator_writes_is_stored_unpruned(rendered):
    model = parse_model(model_doc(pools=[pool(minReplicas=1, maxReplicas=3)]))
    child = render_rayservice(model, model.spec.pools[0], settings=RenderSettings())
    late = (False, api.Reason.PROGRESS_DEADLINE_EXCEEDED, "pool gpu: Ray cluster x is late")
    observation = (
        Observation(rayservices={"gpu": child}, progressing=late) if rendered else Observation({})
    )
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    status = compute_status(model, observation, previous=None, generation=2,
                            endpoints={"gpu": "http://demo-serve-svc.ml.svc:8000"}, now=now)
    for written in (status, invalid_status(status, "bad spec", generation=3, now=now)):
        document = {**model_doc(), "status": _status_as_written(written)}
        result = admit(document, SCHEMA)
        assert result.errors == []
        assert result.pruned == []
        assert result.stored["status"] == _without_nulls(document["status"])
