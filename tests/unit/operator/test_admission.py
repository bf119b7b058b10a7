"""Memory admission: the estimate (weights + KV cache), node capacity, and the decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from factories import LLAMA_8B_CONFIG, make_model, pool, ready_pod, serving_rayservice
from modelgrid_operator import api
from modelgrid_operator.admission import (
    GIB,
    admit,
    estimate_memory,
    facts_from_config,
)
from modelgrid_operator.model_info import facts_from_directory, read_model_facts
from modelgrid_operator.settings import RenderSettings
from modelgrid_operator.status import Observation, compute_status

pytestmark = pytest.mark.unit

SETTINGS = RenderSettings()
FACTS = facts_from_config(LLAMA_8B_CONFIG, source="config.json in /m")
APPLE = {"kubernetes.io/arch": "arm64", "modelgrid.io/accelerator": "apple"}


def node(name: str, labels: dict[str, str], **allocatable: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}}


def test_admission_config_json_gives_llama_parameters_and_kv_architecture():
    assert FACTS.parameters == 8_030_261_248  # Llama 3.1 8B's published count
    assert FACTS.architecture == api.ModelArchitecture(
        num_layers=32, num_key_value_heads=8, head_dim=128
    )
    assert (FACTS.dtype, FACTS.max_position_embeddings) == ("bfloat16", 131072)


def test_admission_estimate_is_weights_plus_kv_for_max_model_len_and_sequences():
    spec = make_model(engineArgs={"maxModelLen": 8192}).spec
    estimate = estimate_memory(spec, FACTS)
    assert not isinstance(estimate, str)
    assert estimate.weights_bytes == 8_030_261_248 * 2
    assert estimate.kv_bytes == 2 * 32 * 8 * 128 * 2 * 8192 == GIB
    four = make_model(engineArgs={"maxModelLen": 8192}, memory={"concurrentSequences": 4}).spec
    assert estimate_memory(four, FACTS).kv_bytes == 4 * GIB  # type: ignore[union-attr]


def test_admission_spec_fields_win_over_what_was_read():
    spec = make_model(
        engineArgs={"maxModelLen": 1024, "dtype": "float32"},
        memory={
            "weightsSize": "4Gi",
            "architecture": {"numLayers": 2, "numKeyValueHeads": 1, "headDim": 64},
        },
    ).spec
    estimate = estimate_memory(spec, FACTS)
    assert estimate.weights_bytes == 4 * GIB  # type: ignore[union-attr]
    assert estimate.kv_bytes == 2 * 2 * 1 * 64 * 4 * 1024  # type: ignore[union-attr]
    by_count = make_model(memory={"parameters": 1_000_000_000}).spec
    assert estimate_memory(by_count, None).weights_bytes == 2 * 10**9  # type: ignore[union-attr]


def test_admission_without_any_size_admits_and_says_no_estimate_was_possible():
    model = make_model(pools=[pool("mac", "apple")], engine="mlx")
    (decision,) = admit(model, None, [node("m1", APPLE, memory="1Gi")], SETTINGS)
    assert decision.admitted and decision.reason is api.Reason.NO_ESTIMATE
    assert "no memory estimate" in decision.message
    assert "spec.memory.weightsSize" in decision.message


def test_admission_apple_pool_too_big_for_every_selected_node_is_refused_with_the_numbers():
    model = make_model(
        engine="mlx", engineArgs={"maxModelLen": 16384}, pools=[pool("mac", "apple")]
    )
    nodes = [
        node("mac-mini-1", APPLE, memory="16Gi"),
        node("mac-mini-2", APPLE, memory="8Gi"),
        node("big-x86", {"kubernetes.io/arch": "amd64"}, memory="512Gi"),  # not selected
    ]
    (decision,) = admit(model, FACTS, nodes, SETTINGS)
    assert not decision.admitted and decision.reason is api.Reason.INSUFFICIENT_MEMORY
    assert decision.message == (
        "pool mac: needs 17.0 GiB = weights 15.0 GiB (8,030,261,248 parameters from config.json "
        "in /m x 2 bytes per parameter) + KV cache 2.0 GiB (16384 tokens x 1 sequence); largest "
        "node mac-mini-1 has 16.0 GiB (allocatable memory) of 2 selected by "
        "kubernetes.io/arch=arm64, modelgrid.io/accelerator=apple; the pool is not deployed"
    )


def test_admission_apple_pool_fits_on_the_largest_selected_node():
    model = make_model(
        engine="mlx", engineArgs={"maxModelLen": 16384}, pools=[pool("mac", "apple")]
    )
    nodes = [node("mac-mini", APPLE, memory="16Gi"), node("mac-studio", APPLE, memory="64Gi")]
    (decision,) = admit(model, FACTS, nodes, SETTINGS)
    assert decision.admitted and decision.reason is api.Reason.FITS
    assert "largest node mac-studio 64.0 GiB" in decision.message


def test_admission_pool_node_selector_narrows_the_nodes():
    model = make_model(
        engine="mlx",
        engineArgs={"maxModelLen": 16384},
        pools=[pool("mac", "apple", nodeSelector={"pool": "minis"})],
    )
    nodes = [
        node("mini", {**APPLE, "pool": "minis"}, memory="16Gi"),
        node("studio", APPLE, memory="192Gi"),  # big, but the pool does not select it
    ]
    (decision,) = admit(model, FACTS, nodes, SETTINGS)
    assert not decision.admitted and "largest node mini" in decision.message


def test_admission_nvidia_capacity_is_gpu_memory_label_times_gpus_times_utilization():
    gpu = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.memory": "24576"}
    nodes = [node("l4", gpu, **{"nvidia.com/gpu": "1"})]
    small = make_model(engineArgs={"maxModelLen": 8192})
    (fits,) = admit(small, FACTS, nodes, SETTINGS)
    assert fits.admitted and "largest node l4 21.6 GiB" in fits.message
    big = make_model(memory={"parameters": 70_000_000_000})
    (refused,) = admit(big, FACTS, nodes, SETTINGS)
    assert not refused.admitted
    assert "(1 x 24576 MiB GPU x 0.9 utilization)" in refused.message
    two = make_model(memory={"parameters": 13_000_000_000}, engineArgs={"tensorParallelSize": 2})
    two_gpus = [node("l4x2", gpu, **{"nvidia.com/gpu": "2"})]
    # 24.2 GiB of weights + 16 GiB of KV (131072 tokens, from config.json) in 2 x 21.6 GiB
    assert admit(two, FACTS, two_gpus, SETTINGS)[0].admitted


def test_admission_unknown_capacity_admits_and_says_so():
    model = make_model(engineArgs={"maxModelLen": 8192})
    no_label = [node("gpu-1", {"nvidia.com/gpu.present": "true"})]
    (decision,) = admit(model, FACTS, no_label, SETTINGS)
    assert decision.admitted and decision.reason is api.Reason.NO_CAPACITY
    (none_match,) = admit(model, FACTS, [], SETTINGS)
    assert none_match.admitted and "no node matches nvidia.com/gpu.present=true yet" in (
        none_match.message
    )
    (unreadable,) = admit(model, FACTS, None, SETTINGS)
    assert unreadable.admitted and "nodes not readable" in unreadable.message


def test_admission_reads_config_json_and_weight_sizes_from_a_model_directory(tmp_path: Path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_8B_CONFIG))
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    facts = facts_from_directory(tmp_path)
    assert facts is not None and facts.weights_bytes == 4096
    source = api.ModelSource(uri=str(tmp_path))
    assert read_model_facts(source, hub=False) == facts
    assert facts_from_directory(tmp_path / "missing") is None
    assert read_model_facts(api.ModelSource(uri="hf://org/x"), hub=False) is None


def _status(model: api.InferenceModel, observation: Observation) -> api.InferenceModelStatus:
    return compute_status(
        model,
        observation,
        previous=None,
        generation=1,
        endpoints={"gpu": "http://x/pools/gpu"},
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_admission_refused_pool_makes_ready_false_insufficient_memory_other_pool_serves():
    model = make_model(
        engineArgs={"maxModelLen": 16384}, pools=[pool("gpu", "nvidia"), pool("mac", "apple")]
    )
    gpu = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.memory": "81559"}
    nodes = [node("h100", gpu), node("mini", APPLE, memory="16Gi")]
    admissions = admit(model, FACTS, nodes, SETTINGS)
    assert [a.admitted for a in admissions] == [True, False]
    rs = {"gpu": serving_rayservice("gpu", "c")}
    status = _status(model, Observation(rs, [ready_pod("gpu", "c")], admissions=admissions))
    ready = next(c for c in status.conditions if c.type == "Ready")
    memory = next(c for c in status.conditions if c.type == "MemoryAdmitted")
    assert status.phase is api.Phase.DEGRADED
    assert (ready.status, ready.reason) == ("False", "InsufficientMemory")
    assert ready.message.startswith("pool mac: needs 17.0 GiB")
    assert (memory.status, memory.reason) == ("False", "InsufficientMemory")
    assert [(p.name, p.desired_replicas, p.endpoint) for p in status.pools] == [
        ("gpu", 1, "http://x/pools/gpu"),
        ("mac", 0, None),
    ]


def test_admission_every_pool_refused_is_failed_with_the_numbers():
    model = make_model(
        engine="mlx", engineArgs={"maxModelLen": 16384}, pools=[pool("mac", "apple")]
    )
    admissions = admit(model, FACTS, [node("mini", APPLE, memory="16Gi")], SETTINGS)
    status = _status(model, Observation({}, admissions=admissions))
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert status.phase is api.Phase.FAILED
    assert (ready.status, ready.reason) == ("False", "InsufficientMemory")
    assert "needs 17.0 GiB" in ready.message and "mini has 16.0 GiB" in ready.message


def test_admission_hub_metadata_reads_config_and_safetensors_counts_and_remembers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The Hub path with the hub replaced by a double (these machines reach no hub)."""
    import huggingface_hub
    from modelgrid_operator import model_info

    config = tmp_path / "config.json"
    config.write_text(json.dumps(LLAMA_8B_CONFIG))
    calls: list[str] = []

    def download(repo: str, filename: str, revision: str | None = None) -> str:
        calls.append(f"{repo}/{filename}@{revision}")
        return str(config)

    class Metadata:
        parameter_count = {"BF16": 8_000_000_000, "U8": 30_261_248}

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub, "get_safetensors_metadata", lambda *a, **k: Metadata())
    monkeypatch.setattr(model_info, "_hub_cache", {})
    source = api.ModelSource(uri="hf://meta/llama", revision="main")
    facts = read_model_facts(source, hub=True, now=0.0)
    assert facts is not None and facts.architecture == FACTS.architecture
    assert facts.weights_bytes == 8_000_000_000 * 2 + 30_261_248
    assert facts.parameters == 8_030_261_248
    assert read_model_facts(source, hub=True, now=60.0) == facts  # remembered
    assert calls == ["meta/llama/config.json@main"]
    read_model_facts(source, hub=True, now=model_info.HUB_RETRY_S + 1)
    assert len(calls) == 2  # asked again once the answer is old
