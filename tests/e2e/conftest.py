"""The e2e tier's ``target``: each client test runs once per pool of the mixed model (vLLM and
MLX, pinned through the gateway) and once through the model's name, on the one mixed stack of
the session (``mixed``, in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import TARGETS, Target, served_since
from mixed_support import Mixed, requests_per_pool


@pytest.fixture(params=TARGETS, ids=lambda pool: pool or "mixed")
def target(request: pytest.FixtureRequest, mixed: Mixed) -> Iterator[Target]:
    """Where the test sends its requests. A pinned test's requests must all have been served by
    its pool (the gateway's own count, ``/v1/stats``, says which pool took each)."""
    target = Target(mixed, request.param)
    before = requests_per_pool(mixed)
    yield target
    if target.pool is not None:
        elsewhere = {p: n for p, n in served_since(mixed, before).items() if p != target.pool}
        assert not any(elsewhere.values()), f"pinned to {target.pool}, also served: {elsewhere}"
