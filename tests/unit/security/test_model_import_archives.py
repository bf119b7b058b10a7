"""A model brought as an archive (issue 20, import) cannot write outside the model cache, expand
without bound, or leave anything half-written.

Each attack is an archive as someone handing over a USB stick would build it: member names that
climb out (``../``) or are absolute, links out of the target, a zip bomb (tiny archive, huge
content, sizes lied about or not), too many entries, a duplicated entry, and archives that are
not models at all. Each is refused with its reason and the cache is left as it was.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from modelgrid_serving.model_import import (
    MANIFEST,
    ArchiveRefused,
    ImportLimits,
    import_archive,
)
from modelgrid_serving.sources import ModelSourceError, resolve_model_source

pytestmark = [pytest.mark.unit, pytest.mark.security]

MODEL_FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "model.safetensors": b"\x00" * 4096,
    "tokenizer.json": b'{"model": {}}',
}


def _tar(path: Path, members: dict[str, bytes], *, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _leftovers(cache: Path) -> list[str]:
    """What the cache holds besides its (empty) folder of imports."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.name != "imported")


def _refused(archive: Path, cache: Path, reason: str, limits: ImportLimits | None = None) -> None:
    """Importing ``archive`` is refused, saying ``reason``, and leaves nothing in the cache."""
    with pytest.raises(ArchiveRefused, match=reason):
        import_archive(archive, cache, limits or ImportLimits())
    assert _leftovers(cache) == []


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


def test_a_model_archive_is_unpacked_with_its_checksums(tmp_path: Path, cache: Path) -> None:
    archive = _tar(tmp_path / "tiny.tar.gz", {f"tiny/{n}": d for n, d in MODEL_FILES.items()})
    model = import_archive(archive, cache)
    assert (
        model.name == "tiny" and (model / "config.json").read_bytes() == MODEL_FILES["config.json"]
    )
    manifest = json.loads((model.parent / MANIFEST).read_text())
    assert set(manifest["files"]) == {f"tiny/{n}" for n in MODEL_FILES}
    assert len(manifest["archive_sha256"]) == 64
    # the same bytes again: the same directory, nothing unpacked twice
    assert import_archive(archive, cache) == model
    assert [p.name for p in (cache / "imported").iterdir()] == [model.parent.name]


def test_a_zip_at_the_root_is_the_model(tmp_path: Path, cache: Path) -> None:
    model = import_archive(_zip(tmp_path / "m.zip", MODEL_FILES), cache)
    assert sorted(p.name for p in model.iterdir()) == sorted([*MODEL_FILES, MANIFEST])


def test_resolve_model_source_imports_an_archive(tmp_path: Path, cache: Path) -> None:
    archive = _zip(tmp_path / "m.zip", MODEL_FILES)
    resolved = Path(resolve_model_source(str(archive), cache=cache))
    assert resolved.is_relative_to(cache) and (resolved / "tokenizer.json").is_file()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escaped.json", "points outside"),
        ("model/../../escaped.json", "points outside"),
        ("/etc/cron.d/owned", "absolute path"),
        ("C:/Windows/owned", "absolute path"),
        ("model\\..\\..\\owned", "points outside"),
    ],
)
@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_entries_that_climb_out_are_refused(
    tmp_path: Path, cache: Path, name: str, reason: str, kind: str
) -> None:
    members = {**MODEL_FILES, name: b"owned"}
    build = _tar if kind == "tar" else _zip
    archive = build(tmp_path / f"evil.{'tar.gz' if kind == 'tar' else 'zip'}", members)
    _refused(archive, cache, reason)
    assert not (tmp_path / "escaped.json").exists()


@pytest.mark.parametrize("link", ["/etc/passwd", "../../outside", "tokenizer.json"])
@pytest.mark.parametrize("hard", [False, True])
def test_links_are_refused(tmp_path: Path, cache: Path, link: str, hard: bool) -> None:
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in MODEL_FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("vocab.json")
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = link
        tar.addfile(info)
    _refused(archive, cache, "is a link")


def test_a_zip_symlink_is_refused(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in MODEL_FILES.items():
            out.writestr(name, data)
        info = zipfile.ZipInfo("vocab.json")
        info.external_attr = 0o120777 << 16  # a symbolic link, as zip -y stores one
        out.writestr(info, "/etc/passwd")
    _refused(archive, cache, "is a link")


def test_devices_and_fifos_are_refused(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "dev.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("model.safetensors")
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = 1, 3
        tar.addfile(info)
    _refused(archive, cache, "not a file or a directory")


def test_a_zip_bomb_is_stopped_while_it_expands(tmp_path: Path, cache: Path) -> None:
    # 64 MiB of zeros deflate to about 64 KiB: a ratio of ~1000, far over the bound of 200
    members = {**MODEL_FILES, "model-00002.safetensors": b"\x00" * (64 * 1024 * 1024)}
    archive = _zip(tmp_path / "bomb.zip", members)
    assert archive.stat().st_size < 1024 * 1024
    _refused(archive, cache, "archive bomb")


def test_sizes_the_archive_lies_about_do_not_matter(tmp_path: Path, cache: Path) -> None:
    """A zip whose headers claim a tiny size: the bytes are counted as written, not trusted."""
    archive = _zip(tmp_path / "liar.zip", {**MODEL_FILES, "big.bin": b"\x00" * (8 << 20)})
    limits = ImportLimits(max_total_bytes=1 << 20, max_ratio=1e9)
    _refused(archive, cache, "expands to more than", limits)


def test_too_many_entries_are_refused(tmp_path: Path, cache: Path) -> None:
    members = {**MODEL_FILES, **{f"shard-{i}.txt": b"x" for i in range(50)}}
    archive = _tar(tmp_path / "many.tar", members, mode="w")
    _refused(archive, cache, "entries, more than the 20", ImportLimits(max_members=20))


def test_an_entry_given_twice_is_refused(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "twice.tar"
    with tarfile.open(archive, "w") as tar:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("config.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    _refused(archive, cache, "twice")


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("config.json", "missing config.json"),
        ("model.safetensors", "missing weights"),
        ("tokenizer.json", "missing a tokenizer"),
    ],
)
def test_an_archive_that_is_not_a_model_names_what_is_missing(
    tmp_path: Path, cache: Path, missing: str, reason: str
) -> None:
    members = {n: d for n, d in MODEL_FILES.items() if n != missing}
    _refused(_tar(tmp_path / "partial.tgz", members), cache, reason)


def test_a_damaged_archive_is_refused(tmp_path: Path, cache: Path) -> None:
    good = _tar(tmp_path / "good.tar.gz", MODEL_FILES).read_bytes()
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(good[: len(good) // 2])
    _refused(damaged, cache, "archive")


def test_resolve_model_source_reports_a_refusal_in_one_line(tmp_path: Path, cache: Path) -> None:
    archive = _tar(tmp_path / "evil.tar", {"../x": b"x"}, mode="w")
    with pytest.raises(ModelSourceError) as info:
        resolve_model_source(str(archive), cache=cache)
    assert "\n" not in str(info.value) and "evil.tar" in str(info.value)
