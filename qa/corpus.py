"""Read news articles from .txt/.md files and .jsonl files into `Article` values."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .chunking import split_sentences
from .errors import CorpusError
from .store import sha256_file
from .when import article_range

MAX_FILE_BYTES = 50_000_000
TEXT_SUFFIXES = frozenset({".txt", ".md"})
SUFFIXES = TEXT_SUFFIXES | {".jsonl"}
TITLE_MAX_CHARS = 200

# Seed files open with "date 2022-10 " or "date 2022-10-07 " and the text on the same line.
_HEADER = re.compile(r"\s*date[ \t]+(\d{4}-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?)(?=\s|$)")
_SKIP_HINT = "; fix or remove it, or pass --skip-bad"


class CorpusWarning(UserWarning):
    """A corpus file or line was skipped."""


@dataclass(frozen=True)
class Article:
    """One news article; chunk offsets index into `text`."""

    doc_id: str
    text: str
    title: str
    date: str | None
    source: str
    url: str | None = None
    publisher: str | None = None
    lang: str | None = None

    @property
    def document(self) -> Document:
        """What the index keeps about the article besides its chunks."""
        return Document(self.doc_id, self.title, self.date, self.source, self.url, self.publisher, self.lang)

    @property
    def fingerprint(self) -> bytes:
        """sha256 of what the article's chunks are made of (id, text, language): an article with
        the fingerprint of an indexed one has the same chunks (its Document may still differ)."""
        canonical = json.dumps([self.doc_id, self.text, self.lang], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).digest()


@dataclass(frozen=True)
class Document:
    """An article's record in the index (its document table) and in citations."""

    REQUIRED: ClassVar[dict] = {"doc_id": str}

    doc_id: str
    title: str = ""
    date: str | None = None
    source: str = ""
    url: str | None = None
    publisher: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class Corpus:
    """What one walk over the corpus paths found: the articles, and every corpus file with its
    checksum (also the files a --skip-bad read skipped), as an index records them."""

    articles: list[Article]
    # {"path", "sha256", "bytes"}, and "skipped": True when something in it was skipped (skip_bad).
    files: list[dict] = field(default_factory=list)
    # Files of which something was skipped with skip_bad (the whole file, a line, a duplicate id).
    skipped: frozenset[str] = frozenset()
    # Known files that were not parsed (scan_corpus's `known`): their articles are the caller's.
    unread: frozenset[str] = frozenset()


def iter_corpus_files(paths: Iterable[str | Path]) -> list[Path]:
    """List the corpus files under ``paths`` in a deterministic order.

    Args:
        paths: Files and folders; folders are searched recursively.

    Returns:
        The .txt, .md and .jsonl files: per argument in the order given, sorted within a folder.

    Raises:
        CorpusError: If a path does not exist or a named file has an unsupported extension.
    """
    return [path for path, _ in _entries(paths)]


def read_corpus(paths: Iterable[str | Path], *, skip_bad: bool = False) -> list[Article]:
    """Read every article under ``paths`` (`scan_corpus` without the file list)."""
    return scan_corpus(paths, skip_bad=skip_bad).articles


def corpus_files(paths: Iterable[str | Path]) -> list[dict]:
    """Every corpus file under ``paths`` with its sha256 and size, as `scan_corpus` records them."""
    return [_file_record(path, None) for path, _ in _entries(paths) if is_unicode(str(path))]


def scan_corpus(paths: Iterable[str | Path], *, skip_bad: bool = False,
                known: Mapping[str, tuple[str, Collection[str]]] | None = None) -> Corpus:
    """Read every article under ``paths`` and checksum every file, in one walk and one read per file.

    Newlines are normalised to ``\\n``, a leading BOM and the ``date …`` header are removed, and
    leading whitespace is stripped; nothing else in the text is changed.

    Args:
        paths: Files and folders (searched recursively for .txt, .md and .jsonl files).
        skip_bad: Skip unreadable files, bad JSONL lines and duplicate ids with a
            `CorpusWarning` instead of raising.
        known: path -> (sha256, doc ids) of files read before, all of whose articles the caller
            has (a sync: the live index). A file with that checksum is hashed but not parsed
            (listed in `unread`) unless one of its ids was already seen in an earlier file, where
            a full read would report the duplicate; its ids count for later files.

    Returns:
        The articles in file order (JSONL: line order), and the files: every corpus file whose
        name is UTF-8 (a file that cannot be read is recorded too, so an index built with
        ``skip_bad`` is up to date while it stays as it was).

    Raises:
        CorpusError: If a path is missing, a file or line is bad (unless ``skip_bad``), ids repeat
            (unless ``skip_bad``), or no article is found at all.
    """
    paths = as_list(paths)
    entries = _entries(paths)
    where = ", ".join(str(p) for p in paths) or "(no paths given)"
    if not entries:
        raise CorpusError(f"no .txt, .md or .jsonl files found under {where}")
    articles: list[Article] = []
    files: list[dict] = []
    seen: dict[str, str] = {}
    skipped: set[str] = set()
    unread: set[str] = set()
    for path, doc_id in entries:
        data = _read_bytes(path)
        record = _file_record(path, data) if is_unicode(str(path)) else None
        if record is not None:
            files.append(record)
        sha, ids = (known or {}).get(str(path), (None, ()))
        if record is not None and record["sha256"] == sha and not any(i in seen for i in ids):
            unread.add(str(path))
            seen.update(dict.fromkeys(ids, str(path)))
            continue
        found, complete = _read_file(path, doc_id, data, skip_bad)
        for article in found:
            if article.doc_id in seen:
                _bad(f"{path}: duplicate id {article.doc_id!r} (first seen in {seen[article.doc_id]})"
                     "; give every article its own id", skip_bad)
                complete = False
                continue
            seen[article.doc_id] = str(path)
            articles.append(article)
        if not complete:
            skipped.add(str(path))
            if record is not None:
                record["skipped"] = True
    if not articles and not unread:
        raise CorpusError(f"no readable article under {where}; all files were skipped (see warnings)")
    return Corpus(articles, files, frozenset(skipped), frozenset(unread))


def corpus_state(paths: Iterable[str | Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime in ns) of every corpus file under ``paths``: one stat per file, no read.

    Cheap enough to poll; when it differs from an earlier call, the corpus may have changed.

    Raises:
        CorpusError: If a path is missing or a named file has an unsupported extension.
    """
    state = []
    for path, _ in _entries(paths):
        try:
            st = path.stat()
        except OSError:  # removed since the walk
            continue
        state.append((str(path), st.st_size, st.st_mtime_ns))
    return state


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it is too large to read or cannot be read (reported later)."""
    try:
        return path.read_bytes() if path.stat().st_size <= MAX_FILE_BYTES else None
    except OSError:
        return None


def _file_record(path: Path, data: bytes | None) -> dict:
    if data is None:  # not read (too large, or being checked without a read): hash it in blocks
        return {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size}
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _entries(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """``(path, doc_id)`` for every corpus file, each file once."""
    entries: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for arg in as_list(paths):
        root = Path(arg)
        if root.is_dir():
            found = sorted(_walk(root), key=lambda item: item[1])
        elif root.is_file():
            if root.suffix.lower() not in SUFFIXES:
                raise CorpusError(f"{root}: unsupported file type {root.suffix!r}; use .txt, .md or .jsonl")
            found = [(root, root.name)]
        elif root.exists():  # a FIFO or device: reading it could block forever or never end
            raise CorpusError(f"{root}: not a regular file or folder; name a file or folder of news texts")
        else:
            raise CorpusError(f"{root}: no such file or folder; check the path")
        for path, doc_id in found:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                entries.append((path, doc_id))
    return entries


def as_list(paths: Iterable[str | Path]) -> list[str | Path]:
    # A lone string would otherwise be iterated character by character.
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    real_root = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in list(dirs):
            sub = Path(folder, name)
            # Symlinked folders are never entered: one inside the corpus is walked through its
            # real path already, and one pointing outside could expose unrelated files.
            if name.startswith(".") or sub.is_symlink():
                dirs.remove(name)
                if sub.is_symlink():
                    _inside(sub, real_root)
        for name in files:
            path = Path(folder, name)
            if name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            if (path.is_symlink() and not _inside(path, real_root)) or not path.is_file():
                continue
            yield path, path.relative_to(root).as_posix()


def _inside(link: Path, real_root: Path) -> bool:
    """Whether a symlink stays inside the corpus folder; warn when it does not."""
    try:
        target = link.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        warnings.warn(f"{link}: symlink cannot be resolved (a loop?); skipped", CorpusWarning)
        return False
    if target.is_relative_to(real_root):
        return True
    warnings.warn(f"{link}: symlink points outside {real_root}; skipped", CorpusWarning)
    return False


def _read_file(path: Path, doc_id: str, data: bytes | None, skip_bad: bool) -> tuple[list[Article], bool]:
    """The file's articles, and whether nothing in it was skipped."""
    try:
        if not is_unicode(str(path)):
            # Undecodable bytes in a name come back from the OS as lone surrogates, which no
            # UTF-8 index file can store.
            raise CorpusError(f"{path}: file name is not valid UTF-8; rename the file{_SKIP_HINT}")
        content = _decode(path, data)
        if path.suffix.lower() == ".jsonl":
            bad_lines: list[int] = []
            return list(_read_jsonl(path, content, skip_bad, bad_lines)), not bad_lines
        match = _HEADER.match(content)
        text = content[match.end():].lstrip() if match else content.lstrip()
        if not text:
            raise CorpusError(f"{path}: has no text" + (" after the date header" if match else "")
                              + _SKIP_HINT)
        date = match.group(1) if match else None
        return [Article(doc_id, text, _title(text), date, str(path))], True
    except CorpusError as error:
        _bad(str(error), skip_bad)
        return [], False


def _decode(path: Path, data: bytes | None) -> str:
    if data is None:
        data = path.read_bytes() if path.stat().st_size <= MAX_FILE_BYTES else None
    if data is None:
        raise CorpusError(f"{path}: is {path.stat().st_size:,} bytes, more than the {MAX_FILE_BYTES:,}-byte limit; "
                          "split it into smaller files")
    if b"\x00" in data:
        raise CorpusError(f"{path}: contains NUL bytes, so it is binary, not text{_SKIP_HINT}")
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}: not valid UTF-8 (byte 0x{data[error.start]:02x} at offset "
                          f"{error.start}); convert it to UTF-8 or pass --skip-bad") from None
    content = content.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not content.strip():
        raise CorpusError(f"{path}: is empty{_SKIP_HINT}")
    return content


def _read_jsonl(path: Path, content: str, skip_bad: bool, bad_lines: list[int]) -> Iterator[Article]:
    # Split on "\n" only: str.splitlines would also break at U+2028, which JSON allows in strings.
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield _jsonl_article(path, number, line)
        except CorpusError as error:
            _bad(str(error), skip_bad)
            bad_lines.append(number)


def _jsonl_article(path: Path, number: int, line: str) -> Article:
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise CorpusError(f"{where}: not valid JSON ({error.msg} at column {error.colno}){_SKIP_HINT}") from None
    except (ValueError, RecursionError) as error:  # an integer over 4,300 digits; nesting too deep
        raise CorpusError(f"{where}: not valid JSON ({type(error).__name__}: {str(error)[:100]}){_SKIP_HINT}") from None
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object with 'id' and 'text'{_SKIP_HINT}")
    doc_id, text = record.get("id", record.get("doc_id")), record.get("text")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or not str(doc_id).strip():
        raise CorpusError(f"{where}: missing or empty 'id' (a string or integer){_SKIP_HINT}")
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(f"{where}: missing or empty 'text'{_SKIP_HINT}")
    for key in ("id", "doc_id", "text", "title", "date", "url", "publisher", "source", "lang"):
        # JSON may escape half a surrogate pair ("\ud800"): not text, and not writable as UTF-8.
        if isinstance(record.get(key), str) and not is_unicode(record[key]):
            raise CorpusError(f"{where}: '{key}' contains a lone surrogate escape (\\udxxx), which is not valid "
                              f"Unicode text{_SKIP_HINT}")
    fields = {key: _optional(record, key, where) for key in ("title", "url", "publisher", "source", "lang")}
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").lstrip()
    return Article(str(doc_id), text, fields["title"] or _title(text), date_text(record.get("date")), str(path),
                   url=fields["url"], publisher=fields["publisher"] or fields["source"], lang=fields["lang"])


def date_text(value) -> str | None:
    """An article's date as the index keeps it: "YYYY-MM-DD", "YYYY-MM" or "YYYY" for the days it
    covers (a datetime or Unix timestamp becomes its day, when.article_range), or the value as
    given when it cannot be read — such articles are counted and named by `qa build`, `qa sync`
    and `qa info`, and left out of date-filtered questions."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        return None
    days = article_range(value)
    if days is None:
        return str(value).strip()[:100]
    if days.since == days.until:
        return days.since.isoformat()
    return days.since.isoformat()[:7 if days.since.month == days.until.month else 4]


def is_unicode(text: str) -> bool:
    """Whether text is encodable as UTF-8, i.e. holds no lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _optional(record: dict, key: str, where: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CorpusError(f"{where}: '{key}' must be a string{_SKIP_HINT}")
    return value.strip() or None


def _title(text: str) -> str:
    # Every line break ends a sentence, so the first sentence is never longer than the first line.
    start, end = split_sentences(text)[0]
    title = text[start:end]
    if len(title) <= TITLE_MAX_CHARS:
        return title
    head = title[:TITLE_MAX_CHARS]
    return (head.rpartition(" ")[0] or head).rstrip() + "…"


def _bad(message: str, skip_bad: bool) -> None:
    if not skip_bad:
        raise CorpusError(message)
    warnings.warn(f"skipped {message}", CorpusWarning)
