"""Fixtures of the mixed-pools tests: the stack runs once for the module, after the shared stack
stopped (two vLLM engines on this machine at once would starve each other)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_stack import Stacks
from mixed_support import Mixed, mixed_stack


@pytest.fixture(scope="module")
def mixed(stacks: Stacks, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mixed]:
    stacks.stop()
    with mixed_stack(tmp_path_factory.mktemp("mixed")) as stack:
        yield stack


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the mixed tests after every test of the shared stacks, so each stack starts once."""
    items.sort(key=lambda item: "mixed" in getattr(item, "fixturenames", ()))
