"""Tables of JSON records that are read on demand: the chunk and document tables of an index.

A table is a UTF-8 JSONL file (one record per line) plus `<file>.offsets.npy`, the int64 byte
offset of every line start and of the end of the file (n + 1 numbers). Opening one maps the file
and reads the offsets; a record is parsed only when it is asked for. A million chunks so cost
8 MB of offsets in memory and open in milliseconds, where a list of dicts took ~1.8 GB and ~3 s
(BENCHMARKS.md), and the pages of the file that are read stay reclaimable page cache.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import mmap
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError


def offsets_name(name: str) -> str:
    return f"{name}.offsets.npy"


@dataclasses.dataclass(frozen=True)
class RawLines:
    """Consecutive records of a table as their JSONL bytes (`Records.raw_lines`), written as they are."""

    data: bytes | memoryview
    lengths: np.ndarray | tuple[int]   # the byte length of each line


def write_records(path: Path, records: Iterable[Any]) -> dict[str, int | None]:
    """Write records (dicts, dataclasses, or `RawLines` copied from another table) as JSONL plus
    their offsets file; return {file name: rows or None}."""
    offsets = [0]
    with open(path, "wb") as f:
        for record in records:
            if isinstance(record, RawLines):
                f.write(record.data)
                if len(record.lengths) == 1:  # one record: most of what a sync copies of the docs table
                    offsets.append(offsets[-1] + int(record.lengths[0]))
                else:
                    offsets.extend((offsets[-1] + np.cumsum(record.lengths, dtype=np.int64)).tolist())
                continue
            if dataclasses.is_dataclass(record):
                record = dataclasses.asdict(record)
            line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
            f.write(line)
            offsets.append(offsets[-1] + len(line))
    np.save(path.with_name(offsets_name(path.name)), np.asarray(offsets, dtype=np.int64), allow_pickle=False)
    return {path.name: len(offsets) - 1, offsets_name(path.name): None}


class Records(Sequence):
    """The records of a JSONL table, each parsed when indexed: `records[i]` is a dict, or a `kind`.

    Args:
        path: the JSONL file (its offsets file sits beside it).
        kind: a dataclass to return records as (e.g. `Chunk`). Its `REQUIRED` {name: type} must
            be in every record, which is otherwise reported as corrupt when read instead of
            failing later wherever the field is used; fields the record lacks get their defaults,
            keys the dataclass lacks are ignored.
        fields: {name: type} every record must have (default: `kind.REQUIRED`).
    """

    def __init__(self, path: Path, kind: type | None = None, *, fields: Mapping[str, type] | None = None):
        self.path = Path(path)
        self.kind = kind
        self.fields = dict(getattr(kind, "REQUIRED", {}) if fields is None else fields)
        self._names = {f.name for f in dataclasses.fields(kind)} if kind else set()
        try:
            offsets = np.load(self.path.with_name(offsets_name(self.path.name)), allow_pickle=False)
            with open(self.path, "rb") as f:
                size = self.path.stat().st_size
                # mmap cannot map an empty file; an empty table has nothing to read anyway.
                self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except (OSError, ValueError, EOFError) as exc:
            raise self._corrupt(f"cannot be read ({exc})") from exc
        if (offsets.dtype != np.int64 or offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0
                or offsets[-1] != size or np.any(np.diff(offsets) <= 0)):
            raise self._corrupt("does not match its offsets file")
        self._offsets = offsets

    def _corrupt(self, what: str) -> IndexCorruptError:
        return IndexCorruptError(f"index file {self.path} {what}; rebuild with `qa build`")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range for a table of {n}")
        i %= n
        try:
            record = json.loads(self._data[self._offsets[i]:self._offsets[i + 1]])
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._corrupt(f"has a broken record at row {i} ({exc})") from exc
        return self._typed(record, i)

    def _typed(self, record, i: int):
        if not isinstance(record, dict):
            raise self._corrupt(f"has a non-object record at row {i}")
        for name, kind in self.fields.items():
            if not isinstance(record.get(name), kind):
                raise self._corrupt(f"has a record without a valid {name!r} at row {i}")
        if self.kind is None:
            return record
        try:
            return self.kind(**{k: v for k, v in record.items() if k in self._names})
        except TypeError as exc:
            raise self._corrupt(f"has a record that is not a {self.kind.__name__} at row {i} ({exc})") from exc

    def raw_lines(self, start: int, stop: int) -> RawLines:
        """Rows start..stop-1 as their JSONL bytes, unparsed (to copy them into a new table)."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"rows {start}..{stop} out of range for a table of {len(self)}")
        a, b = int(self._offsets[start]), int(self._offsets[stop])
        lengths = (b - a,) if stop == start + 1 else np.diff(self._offsets[start:stop + 1])
        # A view of the mapped file, not a copy: a table's worth of rows is written straight through.
        return RawLines(memoryview(self._data)[a:b], lengths)

    def all(self) -> list:
        """Every record, parsed in one go (several times faster than one by one, for a sync that
        reads the whole document table)."""
        if not len(self):
            return []
        try:
            # JSON lines never hold a raw newline, so the lines joined by commas are one JSON array.
            records = json.loads(b"[" + bytes(self._data).rstrip(b"\n").replace(b"\n", b",") + b"]")
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._corrupt(f"has a broken record ({exc})") from exc
        if len(records) != len(self):
            raise self._corrupt("does not match its offsets file")
        return [self._typed(record, i) for i, record in enumerate(records)]

    def __repr__(self) -> str:
        return f"Records({str(self.path)!r}, {len(self)} rows)"


class Documents(Mapping):
    """Document records by doc_id, from a table written sorted by doc_id (`write_documents`).

    Lookups are binary searches over the table, so no per-document state is held in memory.

    Args:
        path: the JSONL file.
        kind: the record dataclass (default: plain dicts with a string "doc_id").
    """

    def __init__(self, path: Path, kind: type | None = None):
        self.records = Records(path, kind, fields={**getattr(kind, "REQUIRED", {}), "doc_id": str})

    def __getitem__(self, doc_id: str) -> dict:
        return self._find(doc_id)[1]

    def position(self, doc_id: str) -> int:
        """The document's row in the table (the order of the per-document news arrays).

        Raises:
            KeyError: no such document.
        """
        return self._find(doc_id)[0]

    def _find(self, doc_id: str) -> tuple[int, Any]:
        # (row, record), each record read once: lookups run for every citation of every answer.
        if isinstance(doc_id, str):
            i = bisect.bisect_left(self.records, doc_id, key=_doc_id)
            if i < len(self.records):
                record = self.records[i]
                if _doc_id(record) == doc_id:
                    return i, record
        raise KeyError(doc_id)

    def __iter__(self) -> Iterator[str]:
        return (_doc_id(r) for r in self.records)

    def __len__(self) -> int:
        return len(self.records)


def write_documents(path: Path, docs: Iterable[Any]) -> dict[str, int | None]:
    """Write document records sorted by doc_id, the order `Documents` looks them up in.

    Raises:
        ValueError: two records share a doc_id.
    """
    docs = sorted(docs, key=_doc_id)
    for a, b in zip(docs, docs[1:]):
        if _doc_id(a) == _doc_id(b):
            raise ValueError(f"two documents share the doc_id {_doc_id(a)!r}")
    return write_records(path, docs)


def _doc_id(record) -> str:
    return record["doc_id"] if isinstance(record, dict) else record.doc_id
