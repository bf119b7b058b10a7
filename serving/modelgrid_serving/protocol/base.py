"""The base of every OpenAI request model: unknown fields pass through, and are logged once."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

logger = logging.getLogger(__name__)


class OpenAIBaseModel(BaseModel):
    """Accepts fields it does not declare (clients send extensions), and logs their names.

    The engine behind may understand them (vLLM accepts many extensions); we only refuse what we
    declare and find out of range.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="wrap")
    @classmethod
    def _log_extra_fields(cls, data: Any, handler: Any) -> Any:
        result = handler(data)
        extra = getattr(result, "__pydantic_extra__", None)
        if extra:
            logger.debug("%s: passing through undeclared fields %s", cls.__name__, sorted(extra))
        return result
