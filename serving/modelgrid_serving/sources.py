"""Model sources: what an engine loads, checked before anything heavy starts."""

from __future__ import annotations

import os
from pathlib import Path

from .model_import import ArchiveRefused, import_archive, is_archive

_REMOTE_SCHEMES = ("s3://", "gs://", "hf://", "http://", "https://", "pvc://")


class ModelSourceError(ValueError):
    """The model source cannot be used; the message is one line, fit for a terminal."""


def is_local_path(source: str) -> bool:
    """True for ``/abs``, ``./rel``, ``../rel``, ``~/...`` and ``file://`` sources.

    Anything else (``org/name``, ``s3://``...) is for the engine to fetch.
    """
    return source.startswith(("/", "./", "../", "~", "file://")) or source in {".", ".."}


def default_cache() -> Path:
    """Where modelgrid keeps generated and imported models: ``$MODELGRID_CACHE`` or
    ``~/.cache/modelgrid``."""
    return Path(os.environ.get("MODELGRID_CACHE") or Path.home() / ".cache" / "modelgrid")


def resolve_model_source(source: str, *, cache: Path | None = None) -> str:
    """Return what the engine should load: local paths made absolute and checked to exist; a
    local archive (``.tar``, ``.tar.gz``, ``.zip`` of a model directory) unpacked into
    ``cache`` (default :func:`default_cache`) after the checks of :mod:`.model_import`.

    Raises:
        ModelSourceError: a local path that does not exist, is neither a directory nor an
            archive, or an archive refused (the message says why).
    """
    if source.startswith(_REMOTE_SCHEMES) or not is_local_path(source):
        return source
    path = Path(source.removeprefix("file://")).expanduser().resolve()
    if not path.exists():
        raise ModelSourceError(f"model source {source!r} does not exist (resolved to {path})")
    if is_archive(path):
        try:
            return str(import_archive(path, cache or default_cache()))
        except ArchiveRefused as exc:
            raise ModelSourceError(f"model source {source!r}: {exc}") from exc
    if not path.is_dir():
        raise ModelSourceError(
            f"model source {source!r} is neither a directory nor a model archive "
            f"(.tar, .tar.gz, .zip) (resolved to {path})"
        )
    return str(path)
