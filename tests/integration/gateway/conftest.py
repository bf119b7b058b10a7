"""Fixtures of the gateway tests: shared mlx_lm.server backends and gateways (see gateway_support)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import (
    Backends,
    Gateway,
    Servers,
    static_config,
)
from polling import wait_for


@pytest.fixture(scope="session")
def other_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model directory (the same weights under another path: another mlx model id)."""
    target = tmp_path_factory.mktemp("other") / "tiny-other"
    shutil.copytree(tiny_model, target)
    return target


@pytest.fixture(scope="session")
def session_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with Servers(tmp_path_factory.mktemp("gateway-session")) as servers:
        yield servers


@pytest.fixture()
def servers(tmp_path: Path) -> Iterator[Servers]:
    with Servers(tmp_path) as servers:
        yield servers


@pytest.fixture(scope="session")
def backends(session_servers: Servers, tiny_model: Path, other_model: Path) -> Backends:
    a = session_servers.mlx(tiny_model, name="mlx-a")
    b = session_servers.mlx(tiny_model, name="mlx-b")
    c = session_servers.mlx(other_model, name="mlx-c")
    for server in (a, b, c):
        server.wait_ready()
    return Backends(a, b, c, tiny_model, other_model)


@pytest.fixture(scope="session")
def gateway(session_servers: Servers, backends: Backends) -> Gateway:
    """A gateway without keys in front of the shared backends, every model probed ready."""
    gw = session_servers.gateway(static_config(backends), name="gateway-open")
    wait_for(
        lambda: len(httpx.get(gw.v1 + "/models").json()["data"]) == 3,
        timeout=30,
        what="the gateway to list tiny, tiny-chat and tiny-b",
    )
    return gw
