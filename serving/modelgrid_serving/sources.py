"""Model sources: what an engine loads, checked before anything heavy starts."""

from __future__ import annotations

from pathlib import Path

_REMOTE_SCHEMES = ("s3://", "gs://", "hf://", "http://", "https://", "pvc://")


class ModelSourceError(ValueError):
    """The model source cannot be used; the message is one line, fit for a terminal."""


def is_local_path(source: str) -> bool:
    """True for ``/abs``, ``./rel``, ``../rel``, ``~/...`` and ``file://`` sources.

    Anything else (``org/name``, ``s3://``...) is for the engine to fetch.
    """
    return source.startswith(("/", "./", "../", "~", "file://")) or source in {".", ".."}


def resolve_model_source(source: str) -> str:
    """Return what the engine should load: local paths made absolute and checked to exist.

    Raises:
        ModelSourceError: a local path that does not exist or is not a directory.
    """
    if source.startswith(_REMOTE_SCHEMES) or not is_local_path(source):
        return source
    path = Path(source.removeprefix("file://")).expanduser().resolve()
    if not path.exists():
        raise ModelSourceError(f"model source {source!r} does not exist (resolved to {path})")
    if not path.is_dir():
        raise ModelSourceError(f"model source {source!r} is not a directory (resolved to {path})")
    return str(path)
