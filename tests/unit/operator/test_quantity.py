"""Kubernetes quantities, read once for the memory admission and the drift check.

Quantities come from node labels and stored objects, which the operator does not control: what
is not a quantity must read as None, never raise or become a number too large to compute with.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from modelgrid_operator.drift import contains
from modelgrid_operator.quantity import parse_quantity, quantity_int

pytestmark = pytest.mark.unit

GIB = 2**30


def test_quantity_int_reads_kubernetes_memory_forms():
    assert quantity_int("16Gi") == 16 * GIB
    assert quantity_int("16G") == 16 * 10**9
    assert quantity_int("131072Ki") == 128 * 1024**2
    assert quantity_int("17179869184") == 16 * GIB
    assert quantity_int(" 1.5Gi ") == 3 * GIB // 2
    assert quantity_int("1e3") == 1000
    assert quantity_int(1024) == 1024


def test_parse_quantity_is_exact():
    assert parse_quantity("500m") == Decimal("0.5")
    assert parse_quantity("0.1G") == 10**8  # no float rounding
    assert parse_quantity("1E") == 10**18  # a suffix, not an exponent without digits
    assert parse_quantity("2E3") == 2000


@pytest.mark.parametrize(
    "value",
    ["lots", "", "Gi", "1 Gi", "Infinity", "NaN", "1e9999", "1e999999999", "1_000", "0x10", True],
)
def test_quantity_not_a_quantity_is_none(value):
    assert parse_quantity(value) is None and quantity_int(value) is None


def test_quantity_int_refuses_negative_sizes():
    assert parse_quantity("-1Gi") == -GIB
    assert quantity_int("-1Gi") is None


def test_drift_reads_quantities_as_the_server_rewrites_them():
    def pod(cpu, memory):
        return {"resources": {"requests": {"cpu": cpu, "memory": memory}}}

    assert contains(pod("1", "1Gi"), pod("1000m", "1024Mi"))
    assert contains(pod("1k", "1Gi"), pod("1e3", "1Gi"))
    assert not contains(pod("1", "1Gi"), pod("1", "1G"))
