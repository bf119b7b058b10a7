"""The base of every OpenAI request model: strict JSON types; unknown fields pass through, logged.

Types are strict, as OpenAI's are: ``"stream": "yes"``, ``"n": "2"`` or ``"n": 2.0`` are refused
(400 naming the field), never coerced; a number field still takes an integer.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

logger = logging.getLogger(__name__)


class OpenAIBaseModel(BaseModel):
    """Accepts fields it does not declare (clients send extensions), and logs their names.

    The engine behind may understand them (vLLM accepts many extensions); we only refuse what we
    declare and find out of range or of the wrong JSON type.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)

    @model_validator(mode="wrap")
    @classmethod
    def _log_extra_fields(cls, data: Any, handler: Any) -> Any:
        result = handler(data)
        extra = getattr(result, "__pydantic_extra__", None)
        if extra:
            logger.debug("%s: passing through undeclared fields %s", cls.__name__, sorted(extra))
        return result


def invalid(param: str, message: str) -> PydanticCustomError:
    """A cross-field refusal that still names its field: raised from a model validator, whose
    error has no location of its own; the error mapper reads ``param`` from the context.

    Args:
        param: The field the client must fix, dotted (``tool_choice``, ``messages.2.tool_call_id``).
        message: What the client reads (pydantic formats it: ``{param}`` becomes the field).
    """
    return PydanticCustomError("invalid_value", message, {"param": param})
