"""Index folders on disk: generations swapped in atomically, a manifest written last, checksums.

Layout of an index folder (default `index/`)::

    index/CURRENT            name of the live generation (replaced atomically)
    index/g-<time>-<rand>/   one complete index: data files + manifest.json (written last)
    index/.lock              held while a build or sync writes and swaps a generation in

A build writes a new generation next to the live one and then replaces CURRENT, so a reader
sees either the old index or the new one, never a mix, and a killed build leaves the old index
untouched (its half-written generation is removed by the next build).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .errors import IndexCorruptError, IndexFormatError, IndexMissingError, IndexWriteError

# 2: chunk and document tables come with row offsets files (records.py).
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
# The manifest's own checksum, over its other content: data files are checksummed in the
# manifest, and this covers the manifest itself (a flipped digit in a chunking or analyzer
# setting would otherwise load and silently change results).
MANIFEST_CHECKSUM = "manifest_sha256"
CURRENT = "CURRENT"
_GEN_PREFIX = "g-"
# How often a reader starts again from CURRENT when rebuilds removed the generation it was reading.
LOAD_ATTEMPTS = 5
T = TypeVar("T")


def manifest_checksum(manifest: dict) -> str:
    """sha256 of a manifest's content without its own checksum field (canonical JSON)."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_CHECKSUM}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


_held = threading.local()


@contextmanager
def locked(index_dir: Path):
    """Hold the index folder's write lock: no other build or sync of it runs meanwhile.

    Readers never take it. A sync holds it from reading the live generation until its own is
    live, so two writers never both derive a generation from the same one (the second would undo
    the first's changes); `write_index` inside it does not lock again. Created if missing.
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    key = str(index_dir.resolve())
    held = _held.__dict__.setdefault("dirs", set())
    if key in held:
        yield
        return
    with open(index_dir / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_index(index_dir: Path, write_files: Callable[[Path], dict], manifest: dict) -> Path:
    """Write a new index generation and make it the live one.

    Args:
        index_dir: the index folder (created if needed).
        write_files: writes the data files into the folder it is given and returns
            {file name: row count or None}.
        manifest: settings to record; `format_version`, `created` and `files` are added.

    Returns:
        The folder of the new generation.

    Raises:
        IndexWriteError: the disk is full, or the folder is not writable; the half-written
            generation is removed and the live index stays as it was.
    """
    live = _current_name(Path(index_dir))
    try:
        return _write_generation(Path(index_dir), write_files, manifest)
    except OSError as exc:
        after = ("The index that was there is unchanged." if _current_name(Path(index_dir)) == live else
                 "The new index is live, but may not have reached the disk; build it again.")
        reason = exc.strerror or str(exc)
        if re.fullmatch(r"\d+ requested and \d+ written", reason):  # numpy's words for a write cut short
            reason = "no space left on the device: a write stopped short"
        raise IndexWriteError(f"cannot write the index in {index_dir} ({reason}); free disk space or "
                              f"write the index elsewhere (--index). {after}") from exc


def _write_generation(index_dir: Path, write_files: Callable[[Path], dict], manifest: dict) -> Path:
    with locked(index_dir):
        _remove_debris(index_dir)
        name = f"{_GEN_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        tmp = index_dir / f".tmp-{name}"
        tmp.mkdir()
        try:
            rows = write_files(tmp)
            files = {
                f: {"sha256": sha256_file(tmp / f), "bytes": (tmp / f).stat().st_size, "rows": n}
                for f, n in sorted(rows.items())
            }
            full = {"format_version": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **manifest, "files": files}
            full[MANIFEST_CHECKSUM] = manifest_checksum(full)
            _write_durably(tmp / MANIFEST, json.dumps(full, indent=2, ensure_ascii=False).encode("utf-8"))
            for f in files:
                _fsync(tmp / f)
            _fsync(tmp)
            os.rename(tmp, index_dir / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        previous = _current_name(index_dir)
        _write_durably(index_dir / CURRENT, (name + "\n").encode())
        _remove_old_generations(index_dir, keep={name}, previous=previous)
    return index_dir / name


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_debris(index_dir: Path) -> None:
    # Only called under the build lock: anything temporary now is left by a killed build.
    for p in index_dir.iterdir():
        if p.name.startswith(".tmp-") or (p.name.startswith(f".{CURRENT}.")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _current_name(index_dir: Path) -> str | None:
    try:
        return (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def tidy(index_dir: Path) -> None:
    """Remove what a killed build or sync left behind (under the write lock, with nothing to
    write): temporary files, and every generation but the live one and the one it was made from
    (a sync killed between its swap and its clean-up leaves more)."""
    index_dir = Path(index_dir)
    _remove_debris(index_dir)
    live = _current_name(index_dir)
    if not live or not (index_dir / live).is_dir():
        return
    try:
        previous = json.loads((index_dir / live / MANIFEST).read_text(encoding="utf-8"))["derived"]["from"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = None  # a build: it was made from nothing
    _remove_old_generations(index_dir, keep={live}, previous=previous)


def _remove_old_generations(index_dir: Path, keep: set[str], previous: str | None) -> None:
    # Keep the previous live generation too: a reader that resolved CURRENT just before the swap
    # may still be opening its files. It is the one CURRENT named, not the latest name: names
    # sort by second only, and a killed build can leave a never-live generation behind.
    for p in index_dir.iterdir():
        if p.is_dir() and p.name.startswith(_GEN_PREFIX) and p.name not in keep and p.name != previous:
            shutil.rmtree(p, ignore_errors=True)


def current_generation(index_dir: Path) -> Path:
    """Return the live generation folder, or raise IndexMissingError."""
    index_dir = Path(index_dir)
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexMissingError(f"no index in {index_dir}/; build one with `qa build PATH --index {index_dir}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{index_dir / CURRENT} cannot be read ({exc}); rebuild with `qa build`") from None
    folder = index_dir / name
    if not name.startswith(_GEN_PREFIX) or "/" in name or not folder.is_dir():
        raise IndexCorruptError(f"{index_dir / CURRENT} points to {name!r}, which is not there; rebuild with `qa build`")
    return folder


def read_manifest(folder: Path) -> dict:
    """Read and check a generation's manifest (format version, file list)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{folder / MANIFEST} is missing; rebuild with `qa build`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{folder / MANIFEST} is not valid JSON ({exc}); rebuild with `qa build`") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int):
        raise IndexCorruptError(f"{folder / MANIFEST} has no format version; rebuild with `qa build`")
    if version > FORMAT_VERSION:
        raise IndexFormatError(
            f"index format {version} is newer than this version of nieuws-qa reads ({FORMAT_VERSION}); "
            "upgrade nieuws-qa or rebuild the index with `qa build`"
        )
    if version < FORMAT_VERSION:
        raise IndexFormatError(f"index format {version} is outdated (this version reads {FORMAT_VERSION}); rebuild with `qa build`")
    if not isinstance(manifest.get("files"), dict):
        raise IndexCorruptError(f"{folder / MANIFEST} lists no files; rebuild with `qa build`")
    if manifest.get(MANIFEST_CHECKSUM) != manifest_checksum(manifest):
        raise IndexCorruptError(f"{folder / MANIFEST} fails its checksum (corrupted or changed); rebuild with `qa build`")
    return manifest


def verify_files(folder: Path, manifest: dict) -> None:
    """Check every file the manifest lists: present, same size, same sha256."""
    for name, meta in manifest["files"].items():
        path = folder / name
        try:
            size = path.stat().st_size if path.is_file() else None
            digest = sha256_file(path) if size == meta.get("bytes") else None
        except OSError:  # removed between the checks, e.g. by a rebuild's clean-up
            size = digest = None
        if size is None:
            raise IndexCorruptError(f"index file {path} is missing; rebuild with `qa build`")
        if size != meta.get("bytes"):
            raise IndexCorruptError(
                f"index file {path} has {size} bytes, the manifest says {meta.get('bytes')} "
                "(truncated or changed); rebuild with `qa build`"
            )
        if digest != meta.get("sha256"):
            raise IndexCorruptError(f"index file {path} fails its checksum (corrupted or changed); rebuild with `qa build`")


def read_live(index_dir: Path, read: Callable[[Path, dict], T], *, verify: bool = True) -> T:
    """Open the live generation and return ``read(folder, manifest)``.

    A rebuild keeps only the previous generation, so one that swaps twice while a reader is busy
    removes the files under it. A reader that then fails while CURRENT has moved on starts again
    from the new CURRENT; generations never change in place, so it never mixes two of them.

    Raises:
        IndexMissingError, IndexCorruptError, IndexFormatError: as open_index, or from ``read``.
    """
    index_dir = Path(index_dir)
    attempt = 1
    while True:
        folder = current_generation(index_dir)
        try:
            manifest = read_manifest(folder)
            if verify:
                verify_files(folder, manifest)
            return read(folder, manifest)
        except IndexCorruptError:
            if attempt >= LOAD_ATTEMPTS or _current_name(index_dir) in (None, folder.name):
                raise
            attempt += 1


def open_index(index_dir: Path, *, verify: bool = True) -> tuple[Path, dict]:
    """Resolve the live generation, read its manifest and (by default) verify its files."""
    return read_live(index_dir, lambda folder, manifest: (folder, manifest), verify=verify)
