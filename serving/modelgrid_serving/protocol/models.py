"""``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /health``, ``GET /`` and ``GET /v1/gpu/info``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ToolCallingInfo(BaseModel):
    """Which parser turns a replica's replies into ``tool_calls``, and why (named in the spec, or
    detected from the model's files by ``auto``)."""

    parser: str | None = Field(description="The vLLM tool-call parser; None: no automatic calls.")
    reason: str


class PoolCard(BaseModel):
    """One pool behind a model name, as the gateway's model card shows it."""

    name: str = Field(description="The pool's name: what `x-modelgrid-pool` pins a request to.")
    capabilities: list[str] = Field(description="What its engine serves (`Capability` values).")


class ModelCard(BaseModel):
    """OpenAI's ``Model``, plus what modelgrid knows about it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "modelgrid"
    root: str | None = Field(default=None, description="The canonical name when id is an alias.")
    max_model_len: int | None = None
    tool_calling: ToolCallingInfo | None = Field(
        default=None, description="The replica's tool-call parser and why; None where unknown."
    )
    reasoning_parser: str | None = Field(
        default=None, description="The vLLM reasoning parser (`reasoning_content` in answers)."
    )
    capabilities: list[str] | None = Field(
        default=None,
        description="The gateway's card: what requests for this name may use (what some ready "
        "pool serves; a request goes only to pools that serve all it needs).",
    )
    pools: list[PoolCard] | None = Field(
        default=None, description="The gateway's card: the ready pools and what each serves."
    )


class ModelList(BaseModel):
    """OpenAI's ``ListModelsResponse``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    """``GET /health``: 200 when the engine answers, 503 (an error body) otherwise."""

    status: Literal["ok"] = "ok"


class ServiceInfo(BaseModel):
    """``GET /``: what this endpoint serves."""

    name: Literal["modelgrid"] = "modelgrid"
    version: str
    models: list[str]
    engine: str
    engine_version: str | None = None


class GPUDevice(BaseModel):
    """One GPU as ``GET /v1/gpu/info`` reports it (the fields DeepInfer documents, plus vendor)."""

    id: int = Field(description="Index on its node, as the container sees it.")
    name: str
    vendor: Literal["nvidia", "apple"]
    total_memory_gb: float
    free_memory_gb: float | None = Field(
        default=None, description="None where the platform does not report it (Apple)."
    )
    compute_capability: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None


class GPUInfo(BaseModel):
    """``GET /v1/gpu/info`` of one replica: the GPUs it sees, and where it runs."""

    gpus: list[GPUDevice]
    node: str = Field(description="Host name of the replica (the pod name in Kubernetes).")
    accelerator: str = Field(description="The pool's accelerator: nvidia, apple or cpu.")
