"""The import directions in ``.importlinter`` hold, and each contract catches the import it forbids.

import-linter runs in-process through its Python API: its contracts check the import graph that
grimp builds by reading the source (nothing is imported, no process started). Each broken case
adds one forbidden import to a copy of that graph: a contract that could not fail would pass it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import grimp
import pytest
from importlinter.api import read_configuration
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.protected import ProtectedContract
from importlinter.domain.contract import Contract

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_TYPES: dict[str, type[Contract]] = {
    "forbidden": ForbiddenContract,
    "layers": LayersContract,
    "protected": ProtectedContract,
}
"""The contract types ``.importlinter`` uses (a new type: add it here, or the test says so)."""


@pytest.fixture(scope="module")
def configured() -> tuple[list[Contract], grimp.ImportGraph]:
    """The contracts of ``.importlinter`` and the import graph of the tree's packages."""
    config = read_configuration(str(ROOT / ".importlinter"))
    session = config["session_options"]
    contracts = []
    for options in config["contracts_options"]:
        assert options["type"] in CONTRACT_TYPES, f"unknown contract type {options['type']}"
        kind = CONTRACT_TYPES[options["type"]]
        contracts.append(
            kind(name=options["name"], session_options=session, contract_options=options)
        )
    graph = grimp.build_graph(*session["root_packages"], cache_dir=None)
    return contracts, graph


def test_import_contracts_read_the_tree_in_this_checkout(configured) -> None:
    _, graph = configured
    assert "modelgrid_serving.gateway.state" in graph.modules
    assert graph.direct_import_exists(
        importer="modelgrid_serving.gateway.state", imported="modelgrid_serving.gateway.sink"
    )


def test_import_contracts_hold_on_the_tree(configured) -> None:
    contracts, graph = configured
    broken = [c.name for c in contracts if not c.check(copy.deepcopy(graph), verbose=False).kept]
    assert not broken, f"broken contracts: {broken}"


# (module to add the import to, the module it imports, the contract that must break)
FORBIDDEN = [
    (
        "modelgrid_serving.protocol.base",
        "modelgrid_serving.errors",
        "The OpenAI protocol imports nothing of ours",
    ),
    (
        "modelgrid_serving.blocking_http",
        "modelgrid_serving.errors",
        "The blocking HTTP helper imports nothing of ours",
    ),
    ("modelgrid_serving.engines.base", "modelgrid_serving.app", "Serving layers"),
    (
        "modelgrid_serving.gateway.routing",
        "modelgrid_serving.engines.vllm",
        "The gateway imports no engine",
    ),
    (
        "modelgrid_serving.gateway.sink",
        "modelgrid_serving.gateway.state",
        "The gateway's parts import neither its assembly",
    ),
    ("modelgrid_serving.names", "modelgrid_operator.api", "Serving never imports the operator"),
    (
        "modelgrid_operator.status",
        "modelgrid_serving.errors",
        "The operator imports only serving's contract modules",
    ),
    ("modelgrid_operator.handlers", "modelgrid_cli", "Nothing imports the CLI"),
]


@pytest.mark.parametrize(
    ("importer", "imported", "contract"), FORBIDDEN, ids=[c for *_, c in FORBIDDEN]
)
def test_import_contracts_catch_a_forbidden_import(
    configured, importer: str, imported: str, contract: str
) -> None:
    contracts, graph = configured
    assert {importer, imported} <= graph.modules
    (named,) = [c for c in contracts if c.name.startswith(contract)]
    broken = copy.deepcopy(graph)
    broken.add_import(
        importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}"
    )
    assert named.check(copy.deepcopy(graph), verbose=False).kept
    assert not named.check(broken, verbose=False).kept
