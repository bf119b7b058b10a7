"""The gateway: one OpenAI endpoint in front of every model's Serve endpoint.

Merges every model's listing, routes by the request's ``model`` field, streams, balances load
over a model's backends, checks API keys and per-key limits, and exports metrics. Backends come
from a static YAML file and/or a Kubernetes watch of InferenceModels. :func:`serve` runs it.
"""

from __future__ import annotations

from .server import serve

__all__ = ["serve"]
