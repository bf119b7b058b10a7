"""Engines: what generates tokens behind the OpenAI routes (vLLM in-process, MLX by proxy)."""

from .base import Engine, EngineOutput

__all__ = ["Engine", "EngineOutput"]
