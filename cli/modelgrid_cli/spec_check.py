"""The admin API's check of a load: the InferenceModel it would create, validated by the typed
API (the one source of truth), its errors handed to the gateway in the gateway's own terms.

The gateway imports no operator code (``.importlinter``); the CLI, which assembles it, passes
:func:`check_spec` in.
"""

from __future__ import annotations

from typing import Any


def check_spec(document: dict[str, Any]) -> None:
    """Validate ``document`` as ``modelgrid render`` would.

    Raises:
        InvalidSpec: naming each bad field by its YAML path (``spec.pools[0].minReplicas``).
    """
    from modelgrid_operator.validation import InvalidModel, parse_model
    from modelgrid_serving.gateway.admin import InvalidSpec

    try:
        parse_model(document)
    except InvalidModel as exc:
        raise InvalidSpec([(e.path, e.reason) for e in exc.errors]) from None
