"""Read what a model's files say about its size, for the memory admission check.

Two places are read: a directory the operator can see (``/path`` or ``file://`` sources: its
``config.json`` and the size of its weight files), and, when enabled, the model's metadata on the
Hugging Face Hub (``config.json`` and the safetensors header counts), through ``huggingface_hub``
so that ``HF_ENDPOINT``, tokens and offline mode apply. Anything unreadable gives no facts, never
an error: the pool is then admitted with a condition saying no estimate was possible.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from modelgrid_operator import api
from modelgrid_operator.admission import ModelFacts, facts_from_config

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".npz", ".gguf")
HUB_RETRY_S = 600.0
"""How long a failed Hub lookup is remembered before it is tried again."""

SAFETENSORS_BYTES = {
    "F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2,
    "I8": 1, "U8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
"""Bytes per element of the safetensors dtypes (packed quantized weights count as stored)."""

_hub_cache: dict[tuple[str, str | None], tuple[float, ModelFacts | None]] = {}


def facts_from_directory(path: Path) -> ModelFacts | None:
    """Facts from a model directory: its ``config.json`` and the total size of its weights."""
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    weights = 0
    for suffix in WEIGHT_SUFFIXES:
        weights = sum(f.stat().st_size for f in path.glob(f"*{suffix}") if f.is_file())
        if weights:
            break  # one format only: a directory may hold the same weights twice
    return facts_from_config(config, source=f"config.json in {path}", weights_bytes=weights or None)


def _facts_from_hub(repo: str, revision: str | None) -> ModelFacts | None:
    try:
        import huggingface_hub
    except ImportError:
        return None
    try:
        config_path = huggingface_hub.hf_hub_download(repo, "config.json", revision=revision)
        config: dict[str, Any] = json.loads(Path(config_path).read_text())
        facts = facts_from_config(config, source=f"the Hub's config.json of {repo}")
        try:
            counts = huggingface_hub.get_safetensors_metadata(
                repo, revision=revision
            ).parameter_count
        except Exception:  # noqa: BLE001 - no safetensors: keep what config.json says
            return facts
        size = sum(count * SAFETENSORS_BYTES.get(d, 2) for d, count in counts.items())
        return ModelFacts(
            source=facts.source,
            weights_bytes=size or None,
            parameters=sum(counts.values()) or facts.parameters,
            dtype=facts.dtype,
            architecture=facts.architecture,
            max_position_embeddings=facts.max_position_embeddings,
        )
    except Exception as exc:  # noqa: BLE001 - unreachable hub, gated repo, bad JSON: no facts
        logger.info("no Hub metadata for %s: %s", repo, exc)
        return None


def read_model_facts(
    source: api.ModelSource, *, hub: bool, now: float | None = None
) -> ModelFacts | None:
    """What can be read about ``source`` from here; None when nothing can.

    Args:
        source: the model's source.
        hub: also ask the Hugging Face Hub for ``org/name`` sources (answers, failures included,
            are remembered for :data:`HUB_RETRY_S`).
        now: monotonic time, for the Hub cache.
    """
    if source.kind is api.SourceKind.PATH:
        return facts_from_directory(Path(source.location))
    if source.kind is not api.SourceKind.HUGGING_FACE or not hub:
        return None
    moment = time.monotonic() if now is None else now
    key = (source.location, source.revision)
    cached = _hub_cache.get(key)
    if cached is not None and moment - cached[0] < HUB_RETRY_S:
        return cached[1]
    facts = _facts_from_hub(source.location, source.revision)
    _hub_cache[key] = (moment, facts)
    return facts
