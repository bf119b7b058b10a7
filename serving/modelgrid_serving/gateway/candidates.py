"""Which backends of a model may take one request: the capability filter, and pool pinning.

One model name may be served by pools of different engines. A request goes only to the
backends whose engine serves every part of it (:mod:`~modelgrid_serving.protocol.capabilities`):
``n: 2`` never reaches a pool that would refuse it while another pool could answer. When no
ready backend can, the client gets 400 ``unsupported_parameter`` naming the field, the same
answer whichever pool the balancer would have picked. The request is searched only for what some
backend of the route lacks (:attr:`~.routing.Route.lacking`), so a model whose pools can all do
everything pays one empty-set test.

Pinning: a request may name one pool in the ``x-modelgrid-pool`` header, where the gateway's
``routing.allow_pool_pinning`` or its key's ``pool_pinning`` allows it (tests that must reach
each pool of a mixed model, an operator checking one pool). A pinned request still passes the
capability filter, on that pool alone. Pinning where it is not allowed is refused (403), never
silently ignored: a test that believes it pinned must not be answered by another pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ClientError, ModelNotReady, UnsupportedParameter
from ..protocol.capabilities import Capability, requirements
from .auth import KeyPolicy
from .config import RoutingConfig
from .routing import NOT_READY_RETRY_AFTER_S, Backend, Route, capabilities_lacking

POOL_HEADER = "x-modelgrid-pool"
"""The request header that pins a request to one pool of its model."""
POOL_HEADER_KEY = POOL_HEADER.encode()
"""The header's name as the ASGI scope spells it."""


class PoolNotFound(ClientError, status=404, code="pool_not_found"):
    """404: the pinned pool is not a pool of the requested model."""


class PinningNotAllowed(ClientError, status=403, code="pool_pinning_not_allowed"):
    """403: the request pins a pool, and neither the gateway nor its key allows that."""


def pinned_pool(value: bytes, policy: KeyPolicy, routing: RoutingConfig) -> str:
    """The pool a request pins: its ``x-modelgrid-pool`` header (:data:`POOL_HEADER_KEY`).

    Args:
        value: The header's value.
        policy: The request's key policy (``pool_pinning``).
        routing: The gateway's routing settings (``allow_pool_pinning``).

    Raises:
        PinningNotAllowed: neither the key nor the gateway allows pinning.
        PoolNotFound: the header is empty.
    """
    if not (policy.pool_pinning or routing.allow_pool_pinning):
        raise PinningNotAllowed(
            f"The {POOL_HEADER} header pins a pool, which this gateway does not allow for this "
            "key (routing.allow_pool_pinning in the gateway's config, or the key's "
            "pool_pinning).",
            param=POOL_HEADER,
        )
    pool = value.decode("latin-1").strip()
    if not pool:
        raise PoolNotFound(f"The {POOL_HEADER} header is empty.", param=POOL_HEADER)
    return pool


def candidates(
    route: Route, route_label: str, payload: Mapping[str, Any], pool: str | None = None
) -> tuple[Backend, ...]:
    """The ready backends of ``route`` that can serve this request (on ``pool`` when pinned).

    Args:
        route: The model's route, as the caller's key may use it (ready backends only).
        route_label: ``chat``, ``completions`` or ``embeddings``.
        payload: The parsed request body.
        pool: The pinned pool (:func:`pinned_pool`), or ``None``.

    Raises:
        PoolNotFound: ``pool`` is not a pool of the model.
        ModelNotReady: ``pool`` is one, with no ready backend now (503, Retry-After).
        UnsupportedParameter: no candidate serves all the request needs (400 naming a field).
    """
    backends, lacking = route.backends, route.lacking
    if pool is not None:
        backends = tuple(b for b in backends if b.pool == pool)
        if not backends:
            if pool in route.pools:
                raise ModelNotReady(
                    f"The pool '{pool}' of the model '{route.model}' has no ready replica; "
                    "retry shortly.",
                    retry_after_s=NOT_READY_RETRY_AFTER_S,
                )
            known = ", ".join(sorted(route.pools)) or "none"
            raise PoolNotFound(
                f"The model '{route.model}' has no pool '{pool}' (its pools: {known}).",
                param=POOL_HEADER,
            )
        lacking = capabilities_lacking(backends)
    if not lacking:
        return backends
    needs = requirements(route_label, payload, lacking)
    if not needs:
        return backends
    able = tuple(b for b in backends if needs.keys() <= b.capabilities)
    if able:
        return able
    raise _unsupported(route.model, pool, needs, backends)


def _unsupported(
    model: str, pool: str | None, needs: dict[Capability, str], backends: tuple[Backend, ...]
) -> UnsupportedParameter:
    """The 400: name a field that no candidate serves at all, else the first of the ones no
    candidate serves together."""
    where = f"the pool '{pool}' of the model '{model}'" if pool else f"the model '{model}'"
    for capability, field in needs.items():
        if not any(capability in b.capabilities for b in backends):
            return UnsupportedParameter(
                f"'{field}' is not supported by {where}: none of its engines serves "
                f"{capability.value}.",
                param=field,
            )
    fields = " together with ".join(f"'{f}'" for f in needs.values())
    return UnsupportedParameter(
        f"No backend of {where} serves {fields}; send them in separate requests.",
        param=next(iter(needs.values())),
    )
