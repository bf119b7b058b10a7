"""Engines: what generates tokens behind the OpenAI routes (vLLM in-process, MLX by proxy)."""

from .base import Engine, EngineOutput
from .events import DONE, Delta, Done, StreamError, StreamEvent, Usage

__all__ = ["DONE", "Delta", "Done", "Engine", "EngineOutput", "StreamError", "StreamEvent", "Usage"]
