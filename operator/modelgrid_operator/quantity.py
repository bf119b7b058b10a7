"""Kubernetes resource quantities (``16Gi``, ``500m``, ``1e3``), read one way.

The memory admission reads node capacity and model sizes from them, and the drift check compares
the quantities it rendered with the ones the API server stored (which rewrites ``1024Mi`` as
``1Gi``): both read a quantity here. What is not a quantity reads as None, never as an exception
or an endless number: node labels and stored objects are input the operator does not control.
"""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:([KMGTPE]i|[kMGTPE]|m)|[eE]([+-]?[0-9]{1,3}))?$"
)
"""Kubernetes' grammar: a signed decimal, then a binary or decimal SI suffix or an exponent
(bounded, so that no quantity can make a number too large to compute with)."""

_SUFFIXES: dict[str | None, int | Decimal] = {
    None: 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def parse_quantity(value: object) -> Decimal | None:
    """The exact value of a quantity (``"1Gi"`` -> 1073741824, ``"500m"`` -> 0.5), or None when
    ``value`` is not one. Numbers count as themselves; booleans are not quantities."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return None
    number, suffix, exponent = match.groups()
    if exponent is not None:
        return Decimal(number).scaleb(int(exponent))
    return Decimal(number) * _SUFFIXES[suffix]


def quantity_int(value: object) -> int | None:
    """A count or a size in whole units (bytes, GPUs): None when unreadable or negative."""
    exact = parse_quantity(value)
    if exact is None or exact < 0:
        return None
    return int(exact)
