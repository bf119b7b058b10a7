"""Test objects built from one valid default, changed one field at a time (KubeRay-style)."""

from __future__ import annotations

import copy
from typing import Any

from modelgrid_operator import api


def model_doc(**spec_overrides: Any) -> dict[str, Any]:
    """A valid InferenceModel document; keyword arguments replace top-level spec fields."""
    doc: dict[str, Any] = {
        "apiVersion": "modelgrid.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": "demo", "namespace": "ml"},
        "spec": {
            "model": {"uri": "hf://org/demo-1b"},
            "pools": [{"name": "gpu", "accelerator": "nvidia", "minReplicas": 1}],
        },
    }
    doc["spec"].update(copy.deepcopy(spec_overrides))
    return doc


def pool(name: str = "gpu", accelerator: str = "nvidia", **fields: Any) -> dict[str, Any]:
    """One pool entry."""
    return {"name": name, "accelerator": accelerator, **fields}


def make_model(**spec_overrides: Any) -> api.InferenceModel:
    """A validated InferenceModel; see :func:`model_doc`."""
    return api.InferenceModel.model_validate(model_doc(**spec_overrides))


def serving_rayservice(pool_name: str = "gpu", cluster: str = "demo-a") -> dict[str, Any]:
    """The RayService of the default model's pool as KubeRay reports it serving: the pool's
    application RUNNING on the active cluster ``cluster``."""
    return {
        "metadata": {"name": f"demo-{pool_name}-00000"},
        "status": {
            "activeServiceStatus": {
                "rayClusterName": cluster,
                "applicationStatuses": {f"demo-{pool_name}": {"status": "RUNNING"}},
            }
        },
    }


def ready_pod(pool_name: str = "gpu", cluster: str = "demo-a") -> dict[str, Any]:
    """A ready worker pod of ``cluster`` in the pool."""
    return {
        "metadata": {"labels": {"modelgrid.io/pool": pool_name, "ray.io/cluster": cluster}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


LLAMA_8B_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}
"""A Llama 3.1 8B ``config.json``: 8,030,261,248 parameters in bfloat16."""


TOOL_TURN: list[dict[str, Any]] = [
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "12 C"},
]
"""An agent's tool round in a chat history: the assistant calls get_weather for Oslo, the tool
answers; the question goes before it, the agent's second turn after."""
