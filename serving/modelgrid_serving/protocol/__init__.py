"""The OpenAI protocol as modelgrid speaks it: request and response models, pydantic only.

Shared by the engines, the Serve application and the gateway. It imports nothing else of ours and
nothing heavy (no torch, no vLLM, no Ray), so the gateway and unit tests stay light.
"""

from .base import OpenAIBaseModel
from .chat import ChatCompletionRequest, ChatMessage, Tool
from .completions import CompletionRequest
from .embeddings import EmbeddingRequest
from .models import (
    GPUDevice,
    GPUInfo,
    Health,
    ModelCard,
    ModelList,
    PoolCard,
    ServiceInfo,
    ToolCallingInfo,
)
from .sampling import ResponseFormat, SamplingRequest, StreamOptions
from .stream import chunk_usage

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "EmbeddingRequest",
    "GPUDevice",
    "GPUInfo",
    "Health",
    "ModelCard",
    "ModelList",
    "OpenAIBaseModel",
    "PoolCard",
    "ResponseFormat",
    "SamplingRequest",
    "ServiceInfo",
    "StreamOptions",
    "Tool",
    "ToolCallingInfo",
    "chunk_usage",
]
