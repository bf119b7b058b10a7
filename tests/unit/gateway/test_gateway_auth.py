"""API keys: hashed, Bearer only, 401 without or with a wrong key, 403 outside the allowlist."""

from __future__ import annotations

import hashlib

import pytest
from modelgrid_serving.errors import PermissionDenied, Unauthorized, error_response
from modelgrid_serving.gateway.auth import ANONYMOUS, KeyRing, authorize, hash_key
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


def test_authorize_outside_allowlist_is_403() -> None:
    policy = make_ring(models=["llama"]).authenticate(f"Bearer {SECRET}".encode())
    authorize(policy, frozenset({"llama"}), "llama")
    with pytest.raises(PermissionDenied) as caught:
        authorize(policy, frozenset({"llama"}), "qwen")
    assert error_response(caught.value).status_code == 403


def test_authorize_without_allowlist_allows_all() -> None:
    authorize(ANONYMOUS, None, "anything")


def test_key_config_refuses_a_plain_key() -> None:
    with pytest.raises(ValueError):
        KeyConfig(name="alice", sha256=SECRET)
