"""InferenceModel files for the subcommands that take one (``up``, ``render``), and how their
refusals reach the user: one ``file: field: reason`` line per error, exit status 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelgrid_operator.api import InferenceModel


class BadInput(Exception):
    """Input the command refuses; :func:`modelgrid_cli.main.main` prints ``lines``."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@contextmanager
def refusing_invalid_models() -> Iterator[None]:
    """Turn the operator's :class:`~modelgrid_operator.validation.InvalidModel` (a bad file, a
    field the policy refuses) into :class:`BadInput`, so the user sees the field, not a
    traceback."""
    from modelgrid_operator.validation import InvalidModel

    try:
        yield
    except InvalidModel as exc:
        raise BadInput(*(f"{exc.source}: {error}" for error in exc.errors)) from None


def read_models(file: str) -> list[InferenceModel]:
    """Every InferenceModel in ``file`` (call it under :func:`refusing_invalid_models`).

    Raises:
        InvalidModel: the file is not valid YAML or holds an invalid model.
        FileNotFoundError: there is no such file.
    """
    from modelgrid_operator.validation import load_models

    return list(load_models(Path(file)))
