"""The project's own errors: each message says what went wrong and what to do about it."""

from __future__ import annotations


class QAError(Exception):
    """Base class for every error this package raises on purpose."""


class CorpusError(QAError):
    """A corpus file cannot be read (missing, empty, not UTF-8, not text, bad JSONL)."""


class QuestionError(QAError):
    """The question is empty or too long."""


class ModelError(QAError):
    """The embedding model cannot be found, converted or loaded."""


class IndexMissingError(QAError):
    """There is no index at the given place."""


class IndexCorruptError(QAError):
    """An index file is missing, truncated or fails its checksum."""


class IndexFormatError(QAError):
    """The index was written in a format this version does not read."""


class ModelMismatchError(QAError):
    """The index was built with another embedding model than the one requested."""


class IndexWriteError(QAError):
    """A new index could not be written (disk full, no permission); the live index is untouched."""


class SyncError(QAError):
    """An index cannot be updated as asked (unknown article ids, an index `qa add` cannot extend)."""


class RebuildWarning(UserWarning):
    """A sync cannot reuse the live index (damaged, another model or chunking) and embeds everything,
    or cannot reuse its stored sentence vectors (damaged) and embeds those again."""
