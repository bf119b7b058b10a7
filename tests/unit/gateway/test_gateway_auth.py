"""API keys: hashed, Bearer only, 401 without or with a wrong key; what a key entry becomes."""

from __future__ import annotations

import hashlib

import pytest
from modelgrid_serving.errors import Unauthorized, error_response
from modelgrid_serving.gateway.auth import ANONYMOUS, KeyRing, hash_key
from modelgrid_serving.gateway.config import KeyConfig

pytestmark = pytest.mark.unit

SECRET = "sk-test-0123456789abcdef"


def make_ring(**kw: object) -> KeyRing:
    key = KeyConfig(name="alice", sha256=hash_key(SECRET), **kw)  # type: ignore[arg-type]
    return KeyRing([key], enabled=True)


def test_hash_key_is_hex_sha256() -> None:
    assert hash_key(SECRET) == hashlib.sha256(SECRET.encode()).hexdigest()


def test_authenticate_with_bearer_key() -> None:
    policy = make_ring(requests_per_minute=5).authenticate(f"Bearer {SECRET}".encode())
    assert policy.name == "alice"
    assert policy.requests_per_minute == 5


@pytest.mark.parametrize(
    "header", [None, b"", b"Bearer sk-wrong", SECRET.encode(), f"Basic {SECRET}".encode()]
)
def test_authenticate_refuses_missing_or_wrong_key_with_401(header: bytes | None) -> None:
    with pytest.raises(Unauthorized) as caught:
        make_ring().authenticate(header)
    reply = error_response(caught.value)
    assert reply.status_code == 401
    assert reply.content()["error"]["code"] == "invalid_api_key"
    assert SECRET not in reply.content()["error"]["message"]


def test_authenticate_when_disabled_is_anonymous() -> None:
    assert KeyRing([], enabled=False).authenticate(None) is ANONYMOUS


def test_a_key_entry_becomes_its_policy() -> None:
    key = KeyConfig(name="alice", sha256=hash_key(SECRET), models=["llama"], namespaces=["team-a"])
    policy = KeyRing([key], enabled=True, max_concurrent=7).authenticate(
        f"Bearer {SECRET}".encode()
    )
    assert policy.restricted and policy.models == {"llama"} and policy.namespaces == {"team-a"}
    assert policy.max_concurrent == 7  # the default, where the key sets none
    own = KeyConfig(name="bob", sha256=hash_key("sk-b"), max_concurrent_requests=2)
    assert KeyRing([own], enabled=True).authenticate(b"Bearer sk-b").max_concurrent == 2
    assert not ANONYMOUS.restricted and ANONYMOUS.max_concurrent is None


def test_key_config_refuses_a_plain_key() -> None:
    with pytest.raises(ValueError):
        KeyConfig(name="alice", sha256=SECRET)
