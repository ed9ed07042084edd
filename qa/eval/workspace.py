"""What the evaluations of one run share: a caching embedder and the indexes of the corpora."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..embedding import sentence_encoder

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..api import QA

QUERY_BATCH = 256         # questions per encode when a whole set is embedded up front


class CachingEmbedder:
    """An embedder that remembers every vector it made, by kind and text.

    Shared by all indexes of a run, so a passage is embedded once however many corpora contain
    it, and a question once however many settings search it. It is a `qa.embedding.Embedder`;
    `embed_questions` embeds a whole question set up front, with a progress bar.
    """

    def __init__(self, inner):
        self.inner = inner
        self.identity = inner.identity
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self.embedded = {"passage": 0, "query": 0, "sentence": 0}

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        return self._encode("passage", texts, progress)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode("query", texts, False)

    def encode_sentences(self, texts: list[str]) -> np.ndarray:
        return self._encode("sentence", texts, False)

    def embed_questions(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed (and remember) questions in batches, with a progress bar if asked."""
        return self._encode("query", list(texts), progress)

    def _encode(self, kind: str, texts: list[str], progress: bool) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (kind, t) not in self._cache]
        if missing:
            if kind == "passage":
                vectors = self.inner.encode_passages(missing, progress=progress)
            elif kind == "sentence":  # highlights: the path the embedder takes for them in the product
                vectors = sentence_encoder(self.inner)(missing)
            else:
                batches = [missing[i:i + QUERY_BATCH] for i in range(0, len(missing), QUERY_BATCH)]
                vectors = np.concatenate([self.inner.encode_queries(b)
                                          for b in progress_bar(batches, "embedding questions", progress)])
            self._cache.update(((kind, t), v) for t, v in zip(missing, vectors))
            self.embedded[kind] += len(missing)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._cache[(kind, t)] for t in texts])


class Workspace:
    """What the evaluations of one run share: the (caching) embedder and the indexes.

    Args:
        embedder: an already loaded embedder (e.g. the test suite's session model).
        model: otherwise, the model to load (None: the bundled default; "hash-64": the fake).
        index_dir: keep indexes here, one subfolder per corpus, reused while the corpus files and
            model are unchanged; None builds them in a temporary folder removed by `close()`.
        progress: show progress bars on stderr.
    """

    def __init__(self, *, embedder=None, model: str | None = None, index_dir: str | Path | None = None,
                 progress: bool = False):
        if embedder is None:
            from ..embedding import load_embedder
            embedder = load_embedder(model)
        self.embedder = embedder if isinstance(embedder, CachingEmbedder) else CachingEmbedder(embedder)
        self._tmp = None if index_dir else tempfile.TemporaryDirectory(prefix="qa-eval-")
        self.index_root = Path(index_dir) if index_dir else Path(self._tmp.name)
        self.progress = progress
        self._open: dict[str, tuple] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._open.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def index(self, passage_files: Sequence[Path]) -> tuple[QA, dict]:
        """The QA index of these passage files, opened (or built, see `QA.open_or_build`) once per run.

        Returns:
            (qa, info) with info = {"folder", "seconds", "cached", "embedded"}: cached is False
            when the index had to be built, embedded counts the passages embedded for it.
        """
        from ..api import QA
        from ..chunking import ChunkSettings
        from ..lexical import Analyzer

        files = sorted({Path(p).resolve() for p in passage_files})
        name = "+".join(p.parent.name for p in files)
        # Everything that makes the index: model (with its precision), chunking, analyzer, files.
        recipe = [self.embedder.identity.to_dict(), ChunkSettings().to_dict(), Analyzer.VERSION, Analyzer().to_dict(),
                  [str(p) for p in files]]
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
        folder = self.index_root / f"{name}-{key}"
        if key in self._open:
            qa, info = self._open[key]
            return qa, {**info, "seconds": 0.0, "cached": True, "embedded": 0}
        start, before = time.perf_counter(), self.embedder.embedded["passage"]
        builds: list[str] = []
        qa = QA.open_or_build(files, folder, embedder=self.embedder, progress=self.progress, on_build=builds.append)
        info = {"folder": str(folder), "seconds": round(time.perf_counter() - start, 2), "cached": not builds,
                "embedded": self.embedder.embedded["passage"] - before}
        self._open[key] = (qa, info)
        return qa, info


@contextmanager
def shared_workspace(workspace: Workspace | None, **settings) -> Iterator[Workspace]:
    """The caller's workspace, or a new one with these settings, closed afterwards."""
    if workspace is not None:
        yield workspace
    else:
        with Workspace(**settings) as ws:
            yield ws


def progress_bar(iterable, desc: str, progress: bool, total: int | None = None):
    """A tqdm bar on stderr (a plain pass-through when progress is off)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not progress, leave=False, file=sys.stderr,
                mininterval=2.0, dynamic_ncols=True)
