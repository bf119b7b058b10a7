"""Helpers of the serving tests: how an engine difference is asserted rather than hidden."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest
from local_stack import Stack


@contextmanager
def refused_by_mlx(stack: Stack, param: str) -> Iterator[None]:
    """On vLLM, run the block; on MLX, the block must fail with a 400 naming ``param``.

    MLX refuses what it cannot honour (docs/serving.md lists it) rather than ignore it.
    """
    if stack.engine != "mlx":
        yield
        return
    with pytest.raises(openai.BadRequestError) as info:
        yield
    assert info.value.code == "unsupported_parameter", info.value.body
    assert info.value.param == param, info.value.body
    assert f"'{param}'" in info.value.message
