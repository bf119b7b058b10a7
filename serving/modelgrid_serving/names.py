"""Served names: a request may name the model by its name or any alias.

A pure lookup table, shared by the Serve application and the gateway's routing table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import InvalidRequest, ModelNotFound


@dataclass(frozen=True)
class ServedNames:
    """Every name a client may use, each mapped to the canonical model name."""

    canonical: Mapping[str, str]
    """name or alias -> canonical model name."""

    @classmethod
    def build(cls, models: Iterable[tuple[str, Iterable[str]]]) -> ServedNames:
        """Build the table from ``(model_name, aliases)`` pairs.

        Raises:
            ValueError: when two models claim the same name (an alias may not shadow another).
        """
        table: dict[str, str] = {}
        for name, aliases in models:
            for served in (name, *aliases):
                owner = table.setdefault(served, name)
                if owner != name:
                    raise ValueError(f"served name {served!r} is claimed by {owner!r} and {name!r}")
        return cls(canonical=table)

    def names(self) -> tuple[str, ...]:
        """All served names, canonical names and aliases, in insertion order."""
        return tuple(self.canonical)

    def resolve(self, requested: object) -> str:
        """The canonical name for what a request's ``model`` field says.

        Raises:
            InvalidRequest: ``model`` is missing or not a string.
            ModelNotFound: no name or alias matches.
        """
        if not isinstance(requested, str) or not requested:
            raise InvalidRequest(
                "'model' is a required property (a served model name)", param="model"
            )
        try:
            return self.canonical[requested]
        except KeyError:
            raise ModelNotFound(requested, available=self.names()) from None
