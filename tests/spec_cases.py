"""Invalid InferenceModel specs and what a user must read for each: shared by the Python
validation tests and the API-server (schema + CEL) fidelity tests, so both judge the same cases."""

from __future__ import annotations

from factories import pool
from modelgrid_operator import api

SPEC_RULE_TYPES = tuple(
    cls
    for cls in vars(api).values()
    if isinstance(cls, type)
    and issubclass(cls, api._Object)
    and cls.rules
    and cls is not api.InferenceModel  # its one rule is on metadata.name, not the spec
)
"""Every type of the spec that declares cross-field rules (found, so a new one is not missed)."""

INVALID = [
    # (case, spec overrides, expected path, expected reason fragment)
    ("no pools", {"pools": []}, "spec.pools", "at least 1 item"),
    ("bad uri", {"model": {"uri": "ftp://x/y"}}, "spec.model.uri", "should match pattern"),
    (
        "revision on s3",
        {"model": {"uri": "s3://bucket/m", "revision": "main"}},
        "spec.model.revision",
        "revision applies only to Hugging Face model ids",
    ),
    (
        "pvc without claim",
        {"model": {"uri": "pvc://Bad_Claim/x"}},
        "spec.model.uri",
        "pvc:// URIs name a PersistentVolumeClaim",
    ),
    (
        "min above max",
        {"pools": [pool(minReplicas=3, maxReplicas=2)]},
        "spec.pools[0].minReplicas",
        "minReplicas must not exceed maxReplicas",
    ),
    (
        "negative min",
        {"pools": [pool(minReplicas=-1)]},
        "spec.pools[0].minReplicas",
        "greater than or equal to 0",
    ),
    ("bad pool name", {"pools": [pool(name="GPU_1")]}, "spec.pools[0].name", "should match"),
    (
        "bad accelerator",
        {"pools": [pool(accelerator="tpu")]},
        "spec.pools[0].accelerator",
        "'nvidia', 'apple' or 'cpu'",
    ),
    ("duplicate pools", {"pools": [pool(), pool()]}, "spec.pools", "pool names must be unique"),
    (
        "gpu in resources",
        {"pools": [pool(resources={"limits": {"nvidia.com/gpu": 2}})]},
        "spec.pools[0].resources.limits",
        "GPUs are derived from engineArgs",
    ),
    (
        "vllm on apple",
        {"engine": "vllm", "pools": [pool(accelerator="apple")]},
        "spec.engine",
        "engine vllm cannot run on apple pools",
    ),
    ("mlx on nvidia", {"engine": "mlx"}, "spec.engine", "engine mlx cannot run on nvidia pools"),
    (
        "tp on cpu",
        {"engineArgs": {"tensorParallelSize": 2}, "pools": [pool(accelerator="cpu")]},
        "spec.engineArgs",
        "need every pool to be nvidia",
    ),
    (
        "tp zero",
        {"engineArgs": {"tensorParallelSize": 0}},
        "spec.engineArgs.tensorParallelSize",
        "greater than or equal to 1",
    ),
    (
        "gpu fraction",
        {"engineArgs": {"gpuMemoryUtilization": 1.5}},
        "spec.engineArgs.gpuMemoryUtilization",
        "less than or equal to 1",
    ),
    ("bad dtype", {"engineArgs": {"dtype": "int3"}}, "spec.engineArgs.dtype", "'auto'"),
    (
        "alias equals name",
        {"servedModelName": "m", "aliases": ["m"]},
        "spec.aliases",
        "aliases must differ from servedModelName",
    ),
    ("duplicate alias", {"aliases": ["a", "a"]}, "spec.aliases", "aliases must be unique"),
    ("bad alias", {"aliases": ["has space"]}, "spec.aliases", "is not a valid model name"),
    (
        "target above max",
        {"serving": {"maxConcurrentRequests": 4, "targetConcurrentRequests": 8}},
        "spec.serving.targetConcurrentRequests",
        "must not exceed maxConcurrentRequests",
    ),
    ("unknown field", {"replicas": 3}, "spec.replicas", "unknown field"),
    (
        "unknown tool parser",
        {"toolCalling": {"parser": "hermes2"}},
        "spec.toolCalling.parser",
        "'auto', 'apertus'",
    ),
    (
        "unknown reasoning parser",
        {"reasoning": {"parser": "think"}},
        "spec.reasoning.parser",
        "'deepseek_r1'",
    ),
    (
        "two chat templates",
        {"chatTemplate": {"inline": "x", "configMapRef": {"name": "t", "key": "k"}}},
        "spec.chatTemplate.inline",
        "chatTemplate takes exactly one of inline and configMapRef",
    ),
    (
        "no chat template",
        {"chatTemplate": {}},
        "spec.chatTemplate.inline",
        "chatTemplate takes exactly one of inline and configMapRef",
    ),
    (
        "bad config map key",
        {"chatTemplate": {"configMapRef": {"name": "t", "key": "a/b"}}},
        "spec.chatTemplate.configMapRef.key",
        "should match pattern",
    ),
    (
        "bad toleration",
        {"pools": [pool(tolerations=[{"operator": "Maybe"}])]},
        "spec.pools[0].tolerations[0].operator",
        "'Exists' or 'Equal'",
    ),
]
