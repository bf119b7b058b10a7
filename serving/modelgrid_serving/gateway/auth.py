"""API keys: stored hashed, checked by hash lookup, with an optional model allowlist per key.

Keys are long random secrets, so one SHA-256 is the right hash (a slow password hash buys
nothing against guessing a 128-bit secret and costs every request). The key itself is never
stored, logged or put in a metric label: the key's ``name`` is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import PermissionDenied, Unauthorized
from .config import KeyConfig


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key, as the keys file stores it."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyPolicy:
    """What one key may do."""

    name: str
    models: frozenset[str] | None = None
    """Allowed names or aliases; ``None``: all."""
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @classmethod
    def from_config(cls, key: KeyConfig) -> KeyPolicy:
        return cls(
            name=key.name,
            models=frozenset(key.models) if key.models is not None else None,
            requests_per_minute=key.requests_per_minute,
            tokens_per_minute=key.tokens_per_minute,
        )


ANONYMOUS = KeyPolicy(name="anonymous")
"""The policy of every request when auth is off."""


class KeyRing:
    """The known keys, by hash."""

    def __init__(self, keys: Iterable[KeyConfig], *, enabled: bool) -> None:
        self.enabled = enabled
        self._by_hash = {k.sha256: KeyPolicy.from_config(k) for k in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, authorization: bytes | None) -> KeyPolicy:
        """The policy of the request's ``Authorization: Bearer <key>`` header.

        Raises:
            Unauthorized: auth is on and the header is missing, malformed or names no known key.
        """
        if not self.enabled:
            return ANONYMOUS
        if not authorization:
            raise Unauthorized(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            )
        scheme, _, key = authorization.decode("latin-1").partition(" ")
        policy = self._by_hash.get(hash_key(key.strip())) if scheme.lower() == "bearer" else None
        if policy is None:
            raise Unauthorized("Incorrect API key provided.")
        return policy


def authorize(policy: KeyPolicy, allowed: frozenset[str] | None, requested: str) -> None:
    """Check that ``policy`` may use the model ``requested`` resolved to.

    Args:
        policy: The caller's key.
        allowed: The canonical models its allowlist designates (see
            :func:`~.routing.allowed_models`), ``None`` for no allowlist.
        requested: The canonical model of the request.

    Raises:
        PermissionDenied: the model is not on the key's allowlist (403).
    """
    if allowed is not None and requested not in allowed:
        raise PermissionDenied(
            f"The API key '{policy.name}' may not use the model '{requested}'.", param="model"
        )
