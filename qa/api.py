"""The `QA` facade: build an index from news texts, load it, search it, answer questions."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import numpy as np

from .answer import NO_ANSWER_COSINE, NO_ANSWER_COSINE_BY_LANGUAGE, Answer, Citation, best_sentence, sentence_spans
from .chunking import Chunk, ChunkSettings, chunk_text
from .corpus import Article, as_list, is_unicode, iter_corpus_files, read_corpus
from .dense import KINDS as DENSE_KINDS, DenseIndex
from .embedding import load_embedder
from .errors import IndexCorruptError, IndexFormatError, ModelMismatchError, QuestionError
from .fusion import RRF_K, Hit, rrf
from .language import detect_language
from .lexical import Analyzer, BM25Index
from .records import Documents, Records, write_documents, write_records
from . import store

MAX_QUESTION_CHARS = 2000
# A lone surrogate (an undecodable byte in argv, "\ud800" in a JSON request) is not text, and the
# model's tokenizer raises TypeError on it; U+FFFD keeps the rest of the question usable.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
SENTENCE_CACHE_SIZE = 20_000
DEFAULT_DEPTH = 20          # candidates taken from each leg before fusion
# The lexical leg votes at a quarter of the dense leg's weight (and less again by coverage, see
# search()): with more it overrules correct dense hits for English questions; see EVALUATION.md.
DEFAULT_WEIGHTS = {"bm25": 0.25, "dense": 1.0}
MODES = ("hybrid", "bm25", "dense")
CHUNKS_FILE, DOCS_FILE, VECTORS_FILE = "chunks.jsonl", "docs.jsonl", "vectors.npy"
CHUNK_FIELDS = {"chunk_id": str, "doc_id": str, "text": str, "start": int, "end": int}


class QA:
    """A loaded hybrid index plus the embedder that built it.

    Use `QA.build(paths)` to index a corpus, `QA.load(index_dir)` to open an index.
    """

    def __init__(self, folder: Path, manifest: dict, chunks: Records, docs: Documents,
                 vectors: np.ndarray, dense: DenseIndex, bm25: BM25Index, embedder):
        self.folder, self.manifest = folder, manifest
        self.chunks, self.docs, self.vectors = chunks, docs, vectors
        self.dense, self.bm25, self.embedder = dense, bm25, embedder
        self.analyzer = Analyzer(**manifest["analyzer"]["settings"])
        # Fusion is a query-time setting, not part of the index: an index built before the
        # defaults were re-tuned gets the current ones.
        self.rrf_k, self.weights, self.depth = RRF_K, dict(DEFAULT_WEIGHTS), DEFAULT_DEPTH
        self._sentence_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, paths: Iterable[str | Path] = ("seeds",), index_dir: str | Path = "index", model: str | None = None,
              *, skip_bad: bool = False, progress: bool = False, chunking: ChunkSettings | None = None,
              dense: str = "auto", embedder=None) -> "QA":
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
        articles = read_corpus(paths, skip_bad=skip_bad)
        embedder = embedder or load_embedder(model)
        settings = chunking or ChunkSettings()
        analyzer = Analyzer()
        chunks, docs = [], {}
        for art in articles:
            docs[art.doc_id] = _doc_record(art)
            for c in chunk_text(art.doc_id, art.text, max_words=settings.max_words, overlap=settings.overlap):
                chunks.append({**_chunk_record(c), "lang": art.lang or detect_language(c.text)})
        vectors = embedder.encode_passages([c["text"] for c in chunks], progress=progress)
        bm25 = BM25Index.build([analyzer.analyze(c["text"], c["lang"]) for c in chunks])
        folder = write_generation(
            Path(index_dir), chunks=chunks, docs=docs.values(), vectors=vectors, dense=DenseIndex.build(vectors, kind=dense),
            bm25=bm25, model=embedder.identity.to_dict(), chunking=settings, analyzer=analyzer,
            corpus={"paths": [str(p) for p in paths], "files": _corpus_files(paths)},
        )
        del chunks, docs, vectors, bm25
        # Served exactly as QA.load serves it: the tables and indexes read back from disk.
        return cls._open(index_dir, folder, store.read_manifest(folder), model=None, embedder=embedder)

    @classmethod
    def load(cls, index_dir: str | Path = "index", *, model: str | None = None, embedder=None,
             verify: bool = True) -> "QA":
        """Open an index, checking its format, checksums and (if given) the requested model.

        Raises:
            IndexMissingError, IndexCorruptError, IndexFormatError: the index cannot be used as is.
            ModelMismatchError: `model` differs from the model the index was built with.
        """
        # read_live starts again from CURRENT if a concurrent rebuild removed the generation.
        return store.read_live(Path(index_dir), lambda folder, manifest: cls._open(
            index_dir, folder, manifest, model=model, embedder=embedder), verify=verify)

    @classmethod
    def _open(cls, index_dir, folder: Path, manifest: dict, *, model: str | None, embedder) -> "QA":
        built_with = manifest.get("model", {}).get("name")
        wanted = model or (embedder.identity.name if embedder else None)
        if wanted and wanted != built_with:
            raise ModelMismatchError(
                f"the index in {index_dir} was built with {built_with!r}, not {wanted!r}; "
                f"rebuild it with `qa build --model {wanted}` or drop --model"
            )
        chunks, docs, vectors, dense, bm25 = _read_files(index_dir, folder, manifest)
        embedder = embedder or load_embedder(built_with)
        if embedder.dim != dense.dim:
            raise ModelMismatchError(f"model {built_with!r} gives {embedder.dim}-d vectors, the index has {dense.dim}-d")
        return cls(folder, manifest, chunks, docs, vectors, dense, bm25, embedder)

    # ------------------------------------------------------------------ querying

    def search(self, question: str, *, k: int = 10, mode: str = "hybrid", depth: int | None = None,
               rrf_k: int | None = None, weights: dict | None = None,
               query_vector: np.ndarray | None = None) -> list[Hit]:
        """Return the k best chunks for a question.

        Args:
            question: the question, Dutch or English.
            k: how many hits.
            mode: "hybrid" (RRF of both legs), "bm25" or "dense".
            depth: candidates per leg before fusion (default DEFAULT_DEPTH).
            rrf_k, weights: fusion constant and per-leg weights (defaults RRF_K, DEFAULT_WEIGHTS).
            query_vector: the question's embedding, if the caller already has it.
        """
        question = check_question(question)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        terms = self.analyzer.analyze(question, detect_language(question)) if mode != "dense" else []
        return self._search(question, terms, k=k, mode=mode, depth=depth, rrf_k=rrf_k, weights=weights,
                            query_vector=query_vector)

    def _search(self, question: str, terms: list[str], *, k: int, mode: str = "hybrid", depth: int | None = None,
                rrf_k: int | None = None, weights: dict | None = None,
                query_vector: np.ndarray | None = None) -> list[Hit]:
        # search() for a checked question and its analysed terms.
        depth = max(depth or self.depth, k)
        legs, weights = {}, dict(weights or self.weights)
        if mode in ("hybrid", "bm25"):
            legs["bm25"] = self.bm25.top_k(terms, depth)
            # BM25 only understands the question's words that occur in the corpus: an English
            # question over Dutch news shares a number or a name at best, and its other matches
            # are accidents ("week"). Weigh the leg by that coverage so accidents cannot outvote
            # the dense leg, while a question in the corpus language keeps full weight.
            weights["bm25"] = weights.get("bm25", 1.0) * self.bm25.coverage(terms)
        if mode in ("hybrid", "dense"):
            if query_vector is None:
                query_vector = self._query_vector(question)
            legs["dense"] = self.dense.search(query_vector, depth)
        return rrf(legs, k=self.rrf_k if rrf_k is None else rrf_k, weights=weights, limit=k)

    def ask(self, question: str, *, k: int = 5) -> Answer:
        """Answer a question with up to k cited passages, the answering sentence highlighted.

        Raises:
            QuestionError: the question is empty or longer than MAX_QUESTION_CHARS.
        """
        question = check_question(question)
        language = detect_language(question)
        qvec = self._query_vector(question)
        terms = self.analyzer.analyze(question, language)
        hits = self._search(question, terms, k=k, query_vector=qvec)
        qterms = set(terms)
        chunks = [self.chunks[hit.row] for hit in hits]
        spans = [sentence_spans(c["text"]) for c in chunks]
        sentences = [[c["text"][a:b] for a, b in sp] for c, sp in zip(chunks, spans)]
        # One encode for the sentences of all cited passages: batching beats one call per passage.
        vectors = self._sentence_vectors([s for group in sentences for s in group])
        bounds = np.cumsum([0] + [len(group) for group in sentences])
        citations = []
        for n, (hit, chunk) in enumerate(zip(hits, chunks), start=1):
            doc = self.docs.get(chunk["doc_id"], {})
            i = n - 1
            highlight = best_sentence(
                chunk["text"], spans[i], vectors[bounds[i]:bounds[i + 1]], qvec, qterms,
                [set(self.analyzer.analyze(s, chunk.get("lang"))) for s in sentences[i]],
            )
            citations.append(Citation(
                n=n, doc_id=chunk["doc_id"], title=doc.get("title", ""), date=doc.get("date"),
                source=doc.get("source", ""), chunk_id=chunk["chunk_id"], text=chunk["text"],
                start=chunk["start"], end=chunk["end"], score=round(hit.score, 6), highlight=highlight,
                ranks=dict(hit.ranks), found_by=hit.found_by,
            ))
        threshold = NO_ANSWER_COSINE_BY_LANGUAGE.get(language, NO_ANSWER_COSINE)
        found = any(c.highlight.score >= threshold for c in citations)
        return Answer(question, language, found, tuple(citations))

    def _query_vector(self, question: str) -> np.ndarray:
        return self.embedder.encode_queries([question])[0]

    def _sentence_vectors(self, sentences: list[str]) -> np.ndarray:
        # Highlights embed the sentences of the cited passages; popular passages come back, so
        # their sentence vectors are kept (bounded, least recently used out first).
        with self._cache_lock:
            found = {s: self._sentence_cache[s] for s in sentences if s in self._sentence_cache}
            for s in found:
                self._sentence_cache.move_to_end(s)
        missing = [s for s in dict.fromkeys(sentences) if s not in found]
        if missing:
            found.update(zip(missing, self.embedder.encode_passages(missing)))
            with self._cache_lock:
                self._sentence_cache.update((s, found[s]) for s in missing)
                while len(self._sentence_cache) > SENTENCE_CACHE_SIZE:
                    self._sentence_cache.popitem(last=False)
        if not sentences:
            return np.zeros((0, self.embedder.dim), np.float32)
        return np.stack([found[s] for s in sentences])

    def info(self) -> dict:
        """A summary of the loaded index (what `qa info` prints)."""
        return _summary(self.folder, self.manifest, self.docs, self.chunks, self.dense,
                        {"k": self.rrf_k, "weights": self.weights, "depth": self.depth})


def describe_index(index_dir: str | Path = "index") -> dict:
    """`QA.load(index_dir).info()` with the default fusion settings, without loading the model."""
    def describe(folder: Path, manifest: dict) -> dict:
        chunks, docs, _, dense, _ = _read_files(index_dir, folder, manifest)
        return _summary(folder, manifest, docs, chunks, dense, {"k": RRF_K, "weights": dict(DEFAULT_WEIGHTS), "depth": DEFAULT_DEPTH})

    return store.read_live(Path(index_dir), describe)


def _read_files(index_dir, folder: Path, manifest: dict) -> tuple[Records, Documents, np.ndarray, DenseIndex, BM25Index]:
    """Open a generation's tables and indexes (not the model), checking they belong together."""
    analyzer_version = manifest.get("analyzer", {}).get("version")
    if analyzer_version != Analyzer.VERSION:
        raise IndexFormatError(
            f"the index in {index_dir} was built with analyzer version {analyzer_version!r}, this version "
            f"of nieuws-qa analyzes text with version {Analyzer.VERSION!r}; rebuild with `qa build`"
        )
    chunks, docs = Records(folder / CHUNKS_FILE, fields=CHUNK_FIELDS), Documents(folder / DOCS_FILE)
    try:
        vectors = np.load(folder / VECTORS_FILE, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise IndexCorruptError(f"cannot read the index in {folder} ({exc}); rebuild with `qa build`") from exc
    dense, bm25 = DenseIndex.load(folder), BM25Index.load(folder)
    if not len(chunks) == len(vectors) == len(dense) == len(bm25):
        raise IndexCorruptError(f"the index files in {folder} disagree on the number of chunks; rebuild with `qa build`")
    return chunks, docs, vectors, dense, bm25


def _summary(folder: Path, manifest: dict, docs, chunks, dense: DenseIndex, fusion: dict) -> dict:
    m = manifest
    return {
        "index": str(folder), "format_version": m["format_version"], "created": m.get("created"),
        "model": m["model"], "documents": len(docs), "chunks": len(chunks),
        "chunking": m["chunking"], "analyzer": m["analyzer"], "fusion": fusion,
        "dense": dense.describe(),
        "corpus": m["corpus"],
    }


def stale_reason(index_dir: str | Path, paths: Iterable[str | Path]) -> str | None:
    """Why the index must be (re)built for these corpus paths, or None if it is up to date.

    Up to date means: it opens, and its corpus files are exactly the readable files under `paths`
    with the same checksums.
    """
    from .errors import QAError

    try:
        _, manifest = store.open_index(Path(index_dir), verify=False)
    except QAError as exc:
        return str(exc)
    recorded = {f["path"]: f["sha256"] for f in manifest.get("corpus", {}).get("files", [])}
    current = {f["path"]: f["sha256"] for f in _corpus_files(paths)}
    if recorded != current:
        changed = sorted(set(recorded) ^ set(current) | {p for p in current if recorded.get(p) not in (None, current[p])})
        return f"the corpus changed since the index was built ({', '.join(changed[:5])})"
    return None


def check_question(question: str) -> str:
    """Return the stripped question (lone surrogates as U+FFFD); raise QuestionError if empty or too long."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty; type a question in Dutch or English")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(question):,} characters long; the limit is {MAX_QUESTION_CHARS:,}. "
            "Ask a shorter question."
        )
    return _LONE_SURROGATE.sub("\ufffd", question.strip())


def _doc_record(art: Article) -> dict:
    return {"doc_id": art.doc_id, "title": art.title, "date": art.date, "source": art.source, "url": art.url,
            "publisher": art.publisher, "lang": art.lang}


def _chunk_record(c: Chunk) -> dict:
    return {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "ordinal": c.ordinal, "start": c.start, "end": c.end, "text": c.text}


def _corpus_files(paths: Iterable[str | Path]) -> list[dict]:
    # Every corpus file under the paths, also one a --skip-bad build skipped: the index is up to
    # date (stale_reason) while those files stay as they were. A name that is not UTF-8 cannot be
    # recorded (nor read, see corpus.py).
    return [{"path": str(p), "sha256": store.sha256_file(p), "bytes": p.stat().st_size}
            for p in iter_corpus_files(paths) if is_unicode(str(p))]


def write_generation(index_dir: Path, *, chunks: Iterable[dict], docs: Iterable[dict], vectors: np.ndarray,
                     dense: DenseIndex, bm25: BM25Index, model: dict, chunking: ChunkSettings,
                     analyzer: Analyzer, corpus: dict) -> Path:
    """Write an index generation (tables, vectors, both indexes, manifest) and make it live.

    Row i of `chunks`, `vectors`, `dense` and `bm25` is the same chunk; `model` is the embedder's
    identity. Returns the generation's folder.
    """
    docs = list(docs)

    def write_files(folder: Path) -> dict:
        rows = {**write_records(folder / CHUNKS_FILE, chunks), **write_documents(folder / DOCS_FILE, docs)}
        if not rows[CHUNKS_FILE] == len(vectors) == len(dense) == len(bm25):
            # Refused before the manifest exists, so the live index stays as it was.
            raise ValueError(f"{rows[CHUNKS_FILE]} chunks, {len(vectors)} vectors, {len(dense)} dense and "
                             f"{len(bm25)} BM25 rows: they must be the same chunks")
        np.save(folder / VECTORS_FILE, vectors, allow_pickle=False)
        rows[VECTORS_FILE] = len(vectors)
        rows.update({f: None for f in dense.save(folder)})
        rows.update({f: None for f in bm25.save(folder)})
        return rows

    manifest = {
        "model": model,
        "chunking": chunking.to_dict(),
        "analyzer": {"version": Analyzer.VERSION, "settings": analyzer.to_dict()},
        "dense": dense.describe(),
        "corpus": corpus,
        "counts": {"documents": len(docs), "chunks": len(vectors)},
    }
    return store.write_index(index_dir, write_files, manifest)
