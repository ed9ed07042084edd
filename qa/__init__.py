"""nieuws-QA: question answering over Dutch news with cited passages.

    from qa import QA
    qa = QA.build(["seeds"], index_dir="index")
    answer = qa.ask("Hoeveel vierkante kilometer is bevrijd?")
"""

from __future__ import annotations

from importlib import import_module

from .errors import (
    CorpusError,
    IndexCorruptError,
    IndexFormatError,
    IndexMissingError,
    IndexWriteError,
    ModelError,
    ModelMismatchError,
    QAError,
    QuestionError,
    SyncError,
)

# The heavy parts (numpy, faiss, torch) load on first use, so `qa --help` and the error classes
# stay instant.
_LAZY = {"QA": "api", "check_question": "query", "Query": "query", "Answer": "answer", "Citation": "answer",
         "Highlight": "answer", "Hit": "fusion", "SearchSettings": "fusion", "Chunk": "chunking", "Document": "corpus",
         "SyncReport": "sync"}

__all__ = [*_LAZY, "QAError", "CorpusError", "QuestionError", "ModelError", "IndexMissingError", "IndexCorruptError",
           "IndexFormatError", "IndexWriteError", "ModelMismatchError", "SyncError"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
