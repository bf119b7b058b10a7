"""API keys: stored hashed, checked by hash lookup, with an optional allowlist per key.

Keys are long random secrets, so one SHA-256 is the right hash (a slow password hash buys
nothing against guessing a 128-bit secret and costs every request). The key itself is never
stored, logged or put in a metric label: the key's ``name`` is, and names are unique (a config
error otherwise, see :func:`~.config.check_unique_keys`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import Unauthorized
from .config import KeyConfig


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key, as the keys file stores it."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyPolicy:
    """What one key may do."""

    name: str
    models: frozenset[str] | None = None
    """Allowed names or aliases; ``None`` (and no ``namespaces``): all."""
    namespaces: frozenset[str] | None = None
    """Allowed namespaces of InferenceModels; ``None`` (and no ``models``): all."""
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    """Requests in flight at once; ``None``: no bound (auth off)."""
    admin: bool = False
    """The key may load and unload models (scope ``admin``); never by default."""
    pool_pinning: bool = False
    """The key may pin a pool (``x-modelgrid-pool``) where the gateway does not allow everyone."""

    restricted: bool = field(init=False)
    """The key has an allowlist (of models, namespaces or both): set once, read per request."""

    def __post_init__(self) -> None:
        restricted = self.models is not None or self.namespaces is not None
        object.__setattr__(self, "restricted", restricted)

    @classmethod
    def from_config(cls, key: KeyConfig, *, max_concurrent: int) -> KeyPolicy:
        """The policy of ``key``; ``max_concurrent`` is the default of its concurrency bound."""
        return cls(
            name=key.name,
            models=frozenset(key.models) if key.models is not None else None,
            namespaces=frozenset(key.namespaces) if key.namespaces is not None else None,
            requests_per_minute=key.requests_per_minute,
            tokens_per_minute=key.tokens_per_minute,
            max_concurrent=key.max_concurrent_requests or max_concurrent,
            admin="admin" in key.scopes,
            pool_pinning=key.pool_pinning,
        )


ANONYMOUS = KeyPolicy(name="anonymous")
"""The policy of every request when auth is off."""


class KeyRing:
    """The known keys, by hash.

    Args:
        keys: The keys of every source, names unique across them (see
            :func:`~.config.check_unique_keys`).
        enabled: Auth is on.
        max_concurrent: The default per-key bound on requests in flight.
        anonymous: With auth on, a request without a known key is served as :data:`ANONYMOUS`
            (no scope): OpenAI clients send some key whatever the server wants. A known key
            still names its holder and its scopes.
    """

    def __init__(
        self,
        keys: Iterable[KeyConfig],
        *,
        enabled: bool,
        max_concurrent: int = 64,
        anonymous: bool = False,
    ) -> None:
        self.enabled = enabled
        self.anonymous = anonymous
        self._by_hash = {
            k.sha256: KeyPolicy.from_config(k, max_concurrent=max_concurrent) for k in keys
        }

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
            if self.anonymous:
                return ANONYMOUS
            raise Unauthorized(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            )
        scheme, _, key = authorization.decode("latin-1").partition(" ")
        policy = self._by_hash.get(hash_key(key.strip())) if scheme.lower() == "bearer" else None
        if policy is None:
            if self.anonymous:
                return ANONYMOUS
            raise Unauthorized("Incorrect API key provided.")
        return policy
