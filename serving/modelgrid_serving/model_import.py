"""Models brought as archives (a ``.tar``, ``.tar.gz`` or ``.zip`` of a model directory, e.g.
from removable media), unpacked into the model cache only once they are known to be safe and
whole.

An archive is untrusted input: its member names may climb out of the target (``../``, absolute
paths), its links may point anywhere, its headers may understate what it expands to, and a
small file may expand to terabytes. So every member is checked before any byte is written;
bytes are counted as they are written (never trusting declared sizes); everything goes into a
private directory beside the destination that is renamed into place only when the model's
files are all there; and any failure removes that directory. Nothing is ever half-written
under the final name, and an archive imported twice is unpacked once (the destination is named
by the archive's SHA-256, and its manifest is checked).

What "a model's files" means: ``config.json``, weights (``*.safetensors``, ``*.bin``, ``*.pt``,
``*.gguf``) and a tokenizer (``tokenizer.json``, ``tokenizer.model`` or ``vocab.json``). An
archive holding one top-level directory is taken as that directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
"""What :func:`is_archive` recognises, by name."""

MANIFEST = "modelgrid-import.json"
"""Written into every imported model: where it came from and each file's SHA-256."""

_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")
_TOKENIZERS = ("tokenizer.json", "tokenizer.model", "vocab.json")
_CHUNK = 1 << 20


class ArchiveRefused(ValueError):
    """The archive cannot be imported; the message names the archive and the problem."""


@dataclass(frozen=True)
class ImportLimits:
    """Bounds on what one archive may expand to."""

    max_total_bytes: int = 256 * 1024**3
    """Everything unpacked, counted as written (256 GiB: the largest open models in bf16)."""
    max_members: int = 10_000
    max_ratio: float = 200.0
    """Unpacked bytes per archive byte: model weights barely compress (1-3x); a bomb does
    thousands of times."""


@dataclass(frozen=True)
class _Member:
    """One entry of an archive, as both formats describe it."""

    name: PurePosixPath
    kind: str
    """``file``, ``dir`` or ``link`` (symbolic or hard)."""
    link: str = ""


def is_archive(path: Path) -> bool:
    """A file whose name says it is an archive this module imports."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES) and path.is_file()


def import_archive(archive: Path, cache: Path, limits: ImportLimits = ImportLimits()) -> Path:
    """Unpack ``archive`` into ``cache/imported/<sha256>`` and return the model's directory.

    Raises:
        ArchiveRefused: the archive is unreadable, unsafe (a member out of the target, a link, a
            device), over ``limits``, or not a model (a file it needs is missing). Nothing is
            left in ``cache`` then.
    """
    digest = _sha256(archive)
    final = cache / "imported" / digest[:32]
    if (final / MANIFEST).is_file() and _manifest_digest(final) == digest:
        return _model_root(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=final.parent))
    try:
        _unpack(archive, partial, limits)
        root = _model_root(partial)
        _check_model_files(root, archive)
        _write_manifest(partial, archive, digest)
        if final.exists():  # an earlier import of the same bytes without a manifest: replace
            shutil.rmtree(final)
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final / root.relative_to(partial)


def _unpack(archive: Path, into: Path, limits: ImportLimits) -> None:
    """Check every member, then write them, counting bytes against ``limits``."""
    budget = min(limits.max_total_bytes, int(archive.stat().st_size * limits.max_ratio) + _CHUNK)
    opened = _open(archive)
    with opened as handle:
        members = list(_members(handle, archive))
        if len(members) > limits.max_members:
            raise ArchiveRefused(
                f"{archive.name}: {len(members)} entries, more than the {limits.max_members} "
                "a model archive may hold."
            )
        for member in members:
            _check_member(member, archive)
        written = 0
        try:
            for member, source in _contents(handle):
                target = into.joinpath(*member.name.parts)
                if member.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = _copy(source, target, written, budget, archive, limits)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise ArchiveRefused(
                f"{archive.name}: entry {exc.filename and Path(exc.filename).name!r} is there "
                "twice, or both a file and a directory."
            ) from exc
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise ArchiveRefused(f"{archive.name}: damaged archive ({exc}).") from exc


def _open(archive: Path) -> tarfile.TarFile | zipfile.ZipFile:
    try:
        if archive.name.lower().endswith(".zip"):
            return zipfile.ZipFile(archive)
        return tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveRefused(f"{archive.name}: not a readable archive ({exc}).") from exc


def _members(handle: tarfile.TarFile | zipfile.ZipFile, archive: Path) -> Iterator[_Member]:
    """Every entry, in the format-neutral shape :func:`_check_member` judges."""
    try:
        if isinstance(handle, zipfile.ZipFile):
            for info in handle.infolist():
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    yield _Member(PurePosixPath(info.filename), "link", "(zip symlink)")
                elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                    yield _Member(PurePosixPath(info.filename), "special")
                else:
                    yield _Member(PurePosixPath(info.filename), "dir" if info.is_dir() else "file")
            return
        for tar in handle.getmembers():
            if tar.issym() or tar.islnk():
                yield _Member(PurePosixPath(tar.name), "link", tar.linkname)
            elif tar.isdir() or tar.isfile():
                yield _Member(PurePosixPath(tar.name), "dir" if tar.isdir() else "file")
            else:
                yield _Member(PurePosixPath(tar.name), "special")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveRefused(f"{archive.name}: not a readable archive ({exc}).") from exc


def _check_member(member: _Member, archive: Path) -> None:
    """Refuse what could write outside the target or is not plain data."""
    name = str(member.name)
    if not member.name.parts:
        raise ArchiveRefused(f"{archive.name}: an entry has an empty name.")
    if member.name.is_absolute() or name.startswith(("/", "\\")) or ":" in member.name.parts[0]:
        raise ArchiveRefused(f"{archive.name}: entry {name!r} has an absolute path.")
    if ".." in member.name.parts or "\\" in name:
        raise ArchiveRefused(f"{archive.name}: entry {name!r} points outside the model directory.")
    if member.kind == "link":
        raise ArchiveRefused(
            f"{archive.name}: entry {name!r} is a link (to {member.link!r}); model archives "
            "hold plain files only."
        )
    if member.kind == "special":
        raise ArchiveRefused(f"{archive.name}: entry {name!r} is not a file or a directory.")


def _contents(
    handle: tarfile.TarFile | zipfile.ZipFile,
) -> Iterator[tuple[_Member, IO[bytes] | None]]:
    """Each checked entry with a stream of its bytes (``None`` for directories)."""
    if isinstance(handle, zipfile.ZipFile):
        for info in handle.infolist():
            name = PurePosixPath(info.filename)
            if info.is_dir():
                yield _Member(name, "dir"), None
            else:
                with handle.open(info) as source:
                    yield _Member(name, "file"), source
        return
    for tar in handle:
        name = PurePosixPath(tar.name)
        if tar.isdir():
            yield _Member(name, "dir"), None
        else:
            source = handle.extractfile(tar)
            assert source is not None  # regular files only: links were refused before
            with source:
                yield _Member(name, "file"), source


def _copy(
    source: IO[bytes] | None,
    target: Path,
    written: int,
    budget: int,
    archive: Path,
    limits: ImportLimits,
) -> int:
    """Write one member, counting every byte against ``budget``; the new total."""
    assert source is not None
    with open(target, "xb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                raise ArchiveRefused(
                    f"{archive.name}: expands to more than {budget} bytes (at most "
                    f"{limits.max_ratio:g} times the archive's size, and "
                    f"{limits.max_total_bytes} bytes in all): refused as a possible archive bomb."
                )
            out.write(chunk)
    return written


def _model_root(unpacked: Path) -> Path:
    """The model directory: the unpacked tree, or its one top-level directory."""
    entries = [p for p in unpacked.iterdir() if p.name != MANIFEST]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return unpacked


def _check_model_files(root: Path, archive: Path) -> None:
    """Refuse an archive that is not a model directory, naming what is missing."""
    missing = []
    if not (root / "config.json").is_file():
        missing.append("config.json")
    if not any(any(root.glob(pattern)) for pattern in _WEIGHTS):
        missing.append("weights (" + ", ".join(_WEIGHTS) + ")")
    if not any((root / name).is_file() for name in _TOKENIZERS):
        missing.append("a tokenizer (" + ", ".join(_TOKENIZERS) + ")")
    if missing:
        raise ArchiveRefused(
            f"{archive.name}: not a model directory: missing " + "; ".join(missing) + "."
        )


def _write_manifest(unpacked: Path, archive: Path, digest: str) -> None:
    """Record where the model came from and each file's SHA-256 (checked on later imports)."""
    files = {
        str(path.relative_to(unpacked)): {"sha256": _sha256(path), "bytes": path.stat().st_size}
        for path in sorted(unpacked.rglob("*"))
        if path.is_file()
    }
    manifest = {
        "archive": archive.name,
        "archive_sha256": digest,
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    (unpacked / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _manifest_digest(imported: Path) -> str | None:
    try:
        return str(json.loads((imported / MANIFEST).read_text())["archive_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
