"""Parse InferenceModel documents and explain what is wrong with them.

Errors name the YAML path of the bad field (``spec.pools[0].minReplicas``) and give a one-line
reason, the same words the CRD's CEL rules give, so ``modelgrid render``, the operator's
InvalidSpec condition and ``kubectl apply`` all say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from modelgrid_operator import api


@dataclass(frozen=True)
class FieldError:
    """One problem in a document: where it is and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class InvalidModel(ValueError):
    """A document is not a valid InferenceModel."""

    def __init__(self, errors: list[FieldError], source: str = "") -> None:
        self.errors = errors
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("; ".join(prefix + str(e) for e in errors))


def _rule_fields() -> dict[str, str]:
    fields: dict[str, str] = {}
    for value in vars(api).values():
        if isinstance(value, type) and issubclass(value, api._Object):
            for rule in value.rules:
                if rule.field:
                    fields[rule.message] = rule.field
    return fields


_RULE_FIELDS = _rule_fields()


def yaml_path(loc: Iterable[Any]) -> str:
    """``["spec", "pools", 0, "name"]`` -> ``spec.pools[0].name``: a field as a user finds it
    in their YAML (and as the API server's own messages name it)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _reason(error: dict[str, Any]) -> tuple[str, str | None]:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field", None
    if error["type"] == "missing":
        return "required field is missing", None
    return message, _RULE_FIELDS.get(message)


def explain(exc: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into YAML paths and one-line reasons."""
    errors = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if not (isinstance(part, str) and "[" in part)]
        reason, field = _reason(error)
        if field:
            loc.append(field)
        errors.append(FieldError(yaml_path(loc), reason))
    return errors


def parse_model(document: Any, *, source: str = "") -> api.InferenceModel:
    """Validate one InferenceModel document.

    Raises:
        InvalidModel: with every problem found, each naming its field.
    """
    if not isinstance(document, dict):
        raise InvalidModel([FieldError("", "expected a YAML mapping (an InferenceModel)")], source)
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind != api.KIND or api_version != api.API_VERSION:
        raise InvalidModel(
            [
                FieldError(
                    "kind",
                    f"expected kind {api.KIND} and apiVersion {api.API_VERSION}, "
                    f"got kind {kind} and apiVersion {api_version}",
                )
            ],
            source,
        )
    try:
        return api.InferenceModel.model_validate(document)
    except ValidationError as exc:
        raise InvalidModel(explain(exc), source) from None


def load_models(path: Path) -> Iterator[api.InferenceModel]:
    """Every InferenceModel in a (multi-document) YAML file.

    Raises:
        InvalidModel: for the first invalid document, or unreadable YAML.
    """
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidModel(
            [FieldError("", f"not valid YAML: {exc}".splitlines()[0])], str(path)
        ) from None
    if not documents:
        raise InvalidModel([FieldError("", "no InferenceModel in the file")], str(path))
    for index, document in enumerate(documents):
        source = str(path) if len(documents) == 1 else f"{path} (document {index + 1})"
        yield parse_model(document, source=source)
