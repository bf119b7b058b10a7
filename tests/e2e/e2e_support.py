"""What the e2e tier's client tests share: where a test sends its requests (one pool of the mixed
model, pinned through the gateway, or the model's name over both pools), and the one tool and
answer schema every client library is asked about.

The tiny model has random weights, so no test asserts on words. What makes an answer's shape
certain is what a client library can ask for: a named or ``required`` ``tool_choice`` and a
``strict`` schema (the engine holds the call's arguments to it), ``response_format`` with a JSON
schema, ``tool_choice: "none"`` for the answer after a tool's result, and ``ignore_eos`` with
``max_tokens`` where a length is asserted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import openai
from mixed_support import Mixed, requests_per_pool
from pydantic import BaseModel, ConfigDict

POOL_HEADER = "x-modelgrid-pool"
"""The gateway's request header that pins a request to one pool of a model (``modelgrid up``
honours it: docs/gateway.md)."""
TARGETS = ("cpu", "mac", None)
"""The pools of ``examples/mixed-tiny.yaml`` (vLLM on ``cpu``, MLX on ``mac``), then the
model's name with no pin: the gateway picks a pool."""
TIMEOUT_S = 120.0
ANSWER_TOKENS = 8
"""The length of every free-text answer (``ignore_eos``: exactly this many tokens)."""
UNTIL_LENGTH = {"ignore_eos": True}
"""The request extension that runs a free-text answer to ``max_tokens`` (the tiny model may
otherwise draw its end-of-sequence token first and answer nothing, correctly)."""
TOOL_TOKENS = 200
"""Room for the longest call the tool's schema allows (a call cut off would not parse)."""
REQUIRED_TOKENS = 400
"""Room for the calls a ``required`` ``tool_choice`` makes: the engine's grammar allows one or
more, and random weights may call again and again (on the vLLM pool, with :data:`SEED`, one
call of ~90 tokens; without a seed, 1 to 4 calls or more)."""
SEED = 7
"""The seed of every constrained request: the same calls each run, on each engine."""
QUESTION = "What is the weather in Oslo, in celsius?"


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    model_config = ConfigDict(extra="forbid")
    city: Literal["Oslo", "Lima"]
    unit: Literal["c", "f"]


class GetTime(BaseModel):
    """Get the local time in a city."""

    model_config = ConfigDict(extra="forbid")
    city: Literal["Oslo", "Lima"]


class Forecast(BaseModel):
    """The structured answer every client library parses (``response_format`` JSON schema)."""

    model_config = ConfigDict(extra="forbid")
    city: Literal["Oslo", "Lima"]
    rain: bool
    sky: Literal["clear", "cloudy", "storm"]


def get_weather(city: Literal["Oslo", "Lima"], unit: Literal["c", "f"]) -> str:
    """Get the current weather in a city.

    Args:
        city: the city.
        unit: "c" for celsius, "f" for fahrenheit.
    """
    return weather_report(GetWeather(city=city, unit=unit))


def weather_report(call: GetWeather | GetTime) -> str:
    """The tool's result for a call, as a tool message carries it: a JSON object that names the
    call's arguments, so a test can see that the result went back with them."""
    return json.dumps({"tool": type(call).__name__, **call.model_dump(), "degrees": 12})


@dataclass(frozen=True)
class Target:
    """Where a test sends its requests: ``pool`` of the mixed model (every request pinned with
    :data:`POOL_HEADER`), or its name over both pools when ``pool`` is None."""

    mixed: Mixed
    pool: str | None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL: the gateway's ``/v1``."""
        return f"{self.mixed.url}/v1"

    @property
    def model(self) -> str:
        return self.mixed.model

    @property
    def headers(self) -> dict[str, str]:
        """The headers every request of the test carries."""
        return {POOL_HEADER: self.pool} if self.pool else {}

    @property
    def engine(self) -> str | None:
        """The pinned pool's engine (``vllm`` or ``mlx``), None when the gateway picks."""
        return self.mixed.pools[self.pool][0] if self.pool else None

    def _client_options(self) -> dict[str, Any]:
        """What the SDK's clients of the target are made with: no retries (a test sees the
        first answer), the e2e timeout."""
        return {
            "base_url": self.base_url,
            "api_key": "unused",
            "default_headers": self.headers,
            "max_retries": 0,
            "timeout": TIMEOUT_S,
        }

    def client(self) -> openai.OpenAI:
        """An OpenAI SDK client of the target (close it: ``with target.client() as client``)."""
        return openai.OpenAI(**self._client_options())

    def async_client(self) -> openai.AsyncOpenAI:
        """The same, with the SDK's async client (``async with target.async_client()``)."""
        return openai.AsyncOpenAI(**self._client_options())


def served_since(mixed: Mixed, before: dict[str, int]) -> dict[str, int]:
    """Requests per pool the gateway counted since ``before`` (a :func:`requests_per_pool`)."""
    after = requests_per_pool(mixed)
    return {pool: count - before.get(pool, 0) for pool, count in after.items()}
