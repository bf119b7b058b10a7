"""``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /health`` and ``GET /``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ModelCard(BaseModel):
    """OpenAI's ``Model``, plus what modelgrid knows about it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "modelgrid"
    root: str | None = Field(default=None, description="The canonical name when id is an alias.")
    max_model_len: int | None = None


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
