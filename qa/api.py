"""The `QA` facade: build an index from news texts, open it, search it, answer questions.

A question goes one way: `prepare` (check, language, terms, vector) -> `retrieve` (both legs,
fused) -> `answer.assemble` (citations, highlights, no-answer rule). `search` stops after
retrieval, `ask` goes on to the answer; both take one immutable `SearchSettings`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from .answer import Answer, SentenceVectors, assemble
from .chunking import ChunkSettings, chunk_text
from .corpus import as_list, scan_corpus
from .dense import KINDS as DENSE_KINDS
from .dense import DenseIndex
from .embedding import Embedder, load_embedder
from .errors import IndexCorruptError, IndexFormatError, IndexMissingError, ModelMismatchError
from .fusion import Hit, SearchSettings, rrf
from .index import Generation, open_live, stale_reason, write_generation
from .language import detect_language
from .lexical import Analyzer, BM25Index
from .query import MAX_QUESTION_CHARS, Query, check_question
from .store import read_manifest

__all__ = ["QA", "MAX_QUESTION_CHARS", "check_question", "describe_index", "stale_reason", "SearchSettings"]


class QA:
    """An opened index plus the embedder that built it.

    Use `QA.build(paths)` to index a corpus, `QA.load(index_dir)` to open an index, and
    `QA.open_or_build(paths)` for "open it, building it first if it does not fit the corpus".
    A `QA` is never changed after it is made, so threads may share one.
    """

    def __init__(self, index: Generation, embedder: Embedder, settings: SearchSettings | None = None):
        self.index, self.embedder = index, embedder
        self.folder, self.manifest = index.folder, index.manifest
        self.chunks, self.docs, self.vectors = index.chunks, index.docs, index.vectors
        self.dense, self.bm25, self.analyzer = index.dense, index.bm25, index.analyzer
        # Fusion is a query-time setting, not part of the index: an index built before the
        # defaults were re-tuned gets the current ones.
        self.settings = settings or SearchSettings()
        self._sentence_vectors = SentenceVectors(embedder)

    # ------------------------------------------------------------------ opening

    @classmethod
    def build(cls, paths: Iterable[str | Path] = ("seeds",), index_dir: str | Path = "index", model: str | None = None,
              *, skip_bad: bool = False, progress: bool = False, chunking: ChunkSettings | None = None,
              dense: str = "auto", embedder: Embedder | None = None) -> QA:
        """Read a corpus, chunk, embed and index it, and write the index atomically.

        Args:
            paths: files or folders with .txt/.md/.jsonl news texts.
            index_dir: where the index lives.
            model: sentence-transformers name or folder (default: bundled multilingual-e5-small).
            skip_bad: skip unreadable files with a warning instead of failing.
            progress: show a progress bar while embedding.
            chunking: chunk size and overlap.
            dense: the dense index kind: "flat" (exact), "hnsw" (approximate), or "auto" (flat
                up to dense.HNSW_THRESHOLD chunks, hnsw above); recorded in the manifest.
            embedder: an already loaded embedder (overrides `model`).

        Raises:
            CorpusError: a corpus file is unreadable (and skip_bad is off), or there is none.
            ModelError: the model cannot be loaded.
        """
        if dense not in DENSE_KINDS:
            raise ValueError(f"dense must be one of {', '.join(DENSE_KINDS)}, got {dense!r}")
        paths = [Path(p) for p in as_list(paths)]
        corpus = scan_corpus(paths, skip_bad=skip_bad)
        embedder = embedder or load_embedder(model)
        settings = chunking or ChunkSettings()
        analyzer = Analyzer()
        chunks = [replace(c, lang=art.lang or detect_language(c.text))
                  for art in corpus.articles
                  for c in chunk_text(art.doc_id, art.text, max_words=settings.max_words, overlap=settings.overlap)]
        vectors = embedder.encode_passages([c.text for c in chunks], progress=progress)
        bm25 = BM25Index.build([analyzer.analyze(c.text, c.lang) for c in chunks])
        folder = write_generation(
            Path(index_dir), chunks=chunks, docs=[a.document for a in corpus.articles], vectors=vectors,
            dense=DenseIndex.build(vectors, kind=dense), bm25=bm25, model=embedder.identity.to_dict(),
            chunking=settings, analyzer=analyzer, corpus={"paths": [str(p) for p in paths], "files": corpus.files},
        )
        del corpus, chunks, vectors, bm25
        # Served exactly as QA.load serves it: the tables and indexes read back from disk (from
        # the generation just written, even if another build has replaced it since).
        return cls._serve(Generation.open(folder, read_manifest(folder), index_dir=index_dir), embedder=embedder)

    @classmethod
    def load(cls, index_dir: str | Path = "index", *, model: str | None = None, embedder: Embedder | None = None,
             verify: bool = True, settings: SearchSettings | None = None) -> QA:
        """Open an index, checking its format, checksums and (if given) the requested model.

        Args:
            index_dir: the index folder.
            model: check that the index was built with this model.
            embedder: an already loaded embedder (default: the model the index was built with).
            verify: check every file's checksum (off: only sizes and formats are checked).
            settings: the default search settings of the opened QA (default: SearchSettings()).

        Raises:
            IndexMissingError, IndexCorruptError, IndexFormatError: the index cannot be used as is.
            ModelMismatchError: `model` differs from the model the index was built with.
        """
        return cls._serve(open_live(index_dir, verify=verify), model=model, embedder=embedder, settings=settings)

    @classmethod
    def _serve(cls, index: Generation, *, model: str | None = None, embedder: Embedder | None = None,
               settings: SearchSettings | None = None) -> QA:
        built_with = index.manifest.get("model", {}).get("name")
        wanted = model or (embedder.identity.name if embedder else None)
        if wanted and wanted != built_with:
            raise ModelMismatchError(
                f"the index in {index.folder.parent} was built with {built_with!r}, not {wanted!r}; "
                f"rebuild it with `qa build --model {wanted}` or drop --model"
            )
        embedder = embedder or load_embedder(built_with)
        if embedder.dim != index.dense.dim:
            raise ModelMismatchError(f"model {built_with!r} gives {embedder.dim}-d vectors, the index has {index.dense.dim}-d")
        return cls(index, embedder, settings)

    @classmethod
    def open_or_build(cls, paths: Iterable[str | Path] = ("seeds",), index_dir: str | Path = "index",
                      model: str | None = None, *, embedder: Embedder | None = None, follow: bool = True,
                      progress: bool = False, on_build: Callable[[str], None] | None = None) -> QA:
        """Open the index, building it from `paths` first when it cannot serve them as it is.

        The one policy of the CLI, the app and evaluation. An index is (re)built when it is
        missing, and with `follow` also when its corpus files differ from those under `paths`,
        its format is outdated or damaged, or it was built with another model than the one asked
        for. Without `follow`, only a missing index is built: an index someone built from another
        corpus is served as it is, and any other problem is raised.

        Args:
            on_build: called with the reason just before a build starts.
        """
        paths = as_list(paths)
        if follow:
            reason = stale_reason(index_dir, paths)
            if reason is None:
                try:
                    return cls.load(index_dir, model=model, embedder=embedder)
                except (ModelMismatchError, IndexCorruptError, IndexFormatError) as exc:
                    reason = str(exc)
        else:
            try:
                return cls.load(index_dir, model=model, embedder=embedder)
            except IndexMissingError as exc:
                reason = str(exc)
        if on_build:
            on_build(reason)
        return cls.build(paths, index_dir, model, embedder=embedder, progress=progress)

    # ------------------------------------------------------------------ questions

    def prepare(self, question: str, settings: SearchSettings | None = None) -> Query:
        """Check a question and compute what the legs of `settings.mode` need (terms, vector).

        Raises:
            QuestionError: the question is empty or longer than MAX_QUESTION_CHARS.
        """
        text = check_question(question)
        language = detect_language(text)
        mode = (settings or self.settings).mode
        terms = tuple(self.analyzer.analyze(text, language)) if mode != "dense" else None
        vector = self.embedder.encode_queries([text])[0] if mode != "bm25" else None
        return Query(text, language, terms, vector)

    def retrieve(self, query: Query, settings: SearchSettings) -> list[Hit]:
        """The settings.k best chunks for a prepared question: each leg's top candidates, fused."""
        depth = max(settings.depth, settings.k)
        legs, weights = {}, dict(settings.weights)
        if settings.mode in ("hybrid", "bm25"):
            legs["bm25"] = self.bm25.top_k(query.terms, depth)
            # BM25 only understands the question's words that occur in the corpus: an English
            # question over Dutch news shares a number or a name at best, and its other matches
            # are accidents ("week"). Weigh the leg by that coverage so accidents cannot outvote
            # the dense leg, while a question in the corpus language keeps full weight.
            weights["bm25"] = weights.get("bm25", 1.0) * self.bm25.coverage(query.terms)
        if settings.mode in ("hybrid", "dense"):
            legs["dense"] = self.dense.search(query.vector, depth)
        return rrf(legs, k=settings.rrf_k, weights=weights, limit=settings.k)

    def search(self, question: str, settings: SearchSettings | None = None, *, k: int | None = None,
               mode: str | None = None) -> list[Hit]:
        """Return the best chunks for a question.

        Args:
            question: the question, Dutch or English.
            settings: how to search (default: this QA's settings, k=10 hybrid).
            k, mode: override the settings' k and mode.

        Raises:
            QuestionError: the question is empty or too long.
            ValueError: k or mode is not allowed.
        """
        settings = (settings or self.settings).but(k=k, mode=mode)
        return self.retrieve(self.prepare(question, settings), settings)

    def ask(self, question: str, *, k: int = 5, settings: SearchSettings | None = None) -> Answer:
        """Answer a question with up to k cited passages, the answering sentence highlighted.

        Raises:
            QuestionError: the question is empty or longer than MAX_QUESTION_CHARS.
        """
        settings = (settings or self.settings).but(k=k)
        # The highlight compares sentences with the question's terms and vector: prepare both.
        query = self.prepare(question, settings.but(mode="hybrid"))
        return assemble(query, self.retrieve(query, settings), self.chunks, self.docs, analyzer=self.analyzer,
                        sentence_vectors=self._sentence_vectors)

    def info(self) -> dict:
        """A summary of the opened index and the search settings it answers with (`qa info`)."""
        return self.index.summary(_fusion_summary(self.settings))


def describe_index(index_dir: str | Path = "index") -> dict:
    """`QA.load(index_dir).info()` with the default search settings, without loading the model."""
    return open_live(index_dir).summary(_fusion_summary(SearchSettings()))


def _fusion_summary(settings: SearchSettings) -> dict:
    return {"k": settings.rrf_k, "weights": dict(settings.weights), "depth": settings.depth}
