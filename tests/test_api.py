"""The QA facade: one immutable SearchSettings per call, one query path, one open-or-build policy."""

from __future__ import annotations

import threading
from dataclasses import FrozenInstanceError

import pytest

from qa import QA, IndexCorruptError, IndexMissingError, QuestionError, SearchSettings
from qa.chunking import Chunk
from qa.corpus import Document
from qa.embedding import HashEmbedder
from qa.fusion import BM25_SHARE, BM25_SHARE_LONG, DEPTH, LONG_TERMS, RRF_K, WEIGHTS, dbsf, rrf
from qa.index import stale_reason
from qa.store import current_generation

QUESTIONS = ["Hoeveel vierkante kilometer is bevrijd?", "inflatie december CBS", "Wie won het WK voetbal?",
             "Who won the World Cup in Qatar?", "gladheid KNMI noorden", "exoplaneet Leiden"]


class CountingEmbedder(HashEmbedder):
    def __init__(self):
        super().__init__(64)
        self.queries = 0

    def encode_queries(self, texts):
        self.queries += len(texts)
        return super().encode_queries(texts)


@pytest.mark.parametrize("change, message", [
    ({"k": 0}, "k must be an integer >= 1, got 0"), ({"depth": -1}, "depth must be"), ({"mode": "sparse"}, "mode must be one of"),
    ({"rrf_k": -1}, "rrf_k must be"), ({"weights": {"bm25": -0.5}}, "weights must be numbers >= 0"), ({"k": True}, "k must be"),
    ({"fusion": "max"}, "fusion must be one of dbsf, rrf"), ({"bm25_share": 1.5}, "bm25_share must be a number from 0 to 1"),
    ({"long_terms": -1}, "long_terms must be"),
])
def test_settings_refuse_bad_values_naming_them(change, message):
    with pytest.raises(ValueError, match=message):
        SearchSettings(**change)


def test_settings_are_one_immutable_value_with_the_tuned_defaults():
    s = SearchSettings()
    assert (s.k, s.mode, s.depth, s.rrf_k, dict(s.weights)) == (10, "hybrid", DEPTH, RRF_K, dict(WEIGHTS))
    with pytest.raises(FrozenInstanceError):
        s.k = 3
    with pytest.raises(TypeError):
        s.weights["bm25"] = 1.0  # a read-only mapping, also when given a dict
    given = {"bm25": 1.0, "dense": 1.0}
    t = SearchSettings(weights=given)
    given["bm25"] = 9.0
    assert t.weights["bm25"] == 1.0
    assert s.but(k=3, mode=None) == SearchSettings(k=3) and hash(t) == hash(SearchSettings(weights={"dense": 1.0, "bm25": 1.0}))
    assert s.fusion_settings() == {"fusion": "dbsf", "depth": DEPTH, "bm25_share": BM25_SHARE,
                                   "bm25_share_long": BM25_SHARE_LONG, "long_terms": LONG_TERMS, "rrf_k": RRF_K,
                                   "weights": dict(WEIGHTS)}
    assert SearchSettings(**s.fusion_settings()) == s


def test_search_follows_the_settings_it_is_given(hash_qa):
    q = QUESTIONS[0]
    assert len(hash_qa.search(q, k=2)) == 2
    assert all(h.found_by == "bm25" for h in hash_qa.search(q, mode="bm25"))
    assert all(h.found_by == "dense" for h in hash_qa.search(q, mode="dense"))
    # The same fusion as dbsf() over the legs' own top lists, with the lexical share set by how many
    # of the question's terms the corpus has (a long question leans on BM25), times coverage.
    for settings in (SearchSettings(k=4, depth=5, long_terms=2), SearchSettings(k=4, depth=5, long_terms=99)):
        query = hash_qa.prepare(q, settings)
        legs = {"bm25": hash_qa.bm25.top_k(query.terms, 5), "dense": hash_qa.dense.search(query.vector, 5)}
        coverage = hash_qa.bm25.coverage(query.terms)
        share = coverage * (BM25_SHARE_LONG if settings.long_terms == 2 else BM25_SHARE)
        assert hash_qa.search(q, settings) == dbsf(legs, weights={"bm25": share, "dense": 1 - share}, limit=4)
    # and rrf() for fusion="rrf", the BM25 weight scaled by coverage
    s = SearchSettings(k=4, depth=5, fusion="rrf", rrf_k=3, weights={"bm25": 0.5, "dense": 1.0})
    weights = {"bm25": 0.5 * hash_qa.bm25.coverage(query.terms), "dense": 1.0}
    assert hash_qa.search(q, s) == rrf(legs, k=3, weights=weights, limit=4)
    # depth is at least k, so k hits come back when the corpus has them
    assert len(hash_qa.search(q, SearchSettings(depth=1), k=len(hash_qa.chunks), mode="dense")) == len(hash_qa.chunks)


def test_a_mode_prepares_only_what_its_legs_need(news_dir, tmp_path):
    embedder = CountingEmbedder()
    qa = QA.build([news_dir], tmp_path / "index", embedder=embedder)
    before = embedder.queries
    query = qa.prepare(QUESTIONS[1], SearchSettings(mode="bm25"))
    assert query.vector is None and query.terms and embedder.queries == before
    query = qa.prepare(QUESTIONS[1], SearchSettings(mode="dense"))
    assert query.terms is None and query.vector.shape == (64,) and embedder.queries == before + 1
    qa.ask(QUESTIONS[1])
    assert embedder.queries == before + 2  # one question, one query embedding, highlight included


def test_ask_searches_with_the_given_settings_and_highlights_in_every_mode(hash_qa):
    for mode in ("hybrid", "bm25", "dense"):
        answer = hash_qa.ask(QUESTIONS[0], k=3, settings=SearchSettings(mode=mode))
        assert 1 <= len(answer.citations) <= 3
        assert all(c.found_by in (("bm25", "dense", "both") if mode == "hybrid" else (mode,)) for c in answer.citations)
        assert all(c.text[c.highlight.start:c.highlight.end] == c.highlight.text for c in answer.citations)
    with pytest.raises(QuestionError):
        hash_qa.ask("   ")


def test_records_are_typed_from_disk_to_citation(hash_qa):
    chunk = hash_qa.chunks[0]
    assert isinstance(chunk, Chunk) and chunk.lang in ("nl", "en")
    doc = hash_qa.docs[chunk.doc_id]
    assert isinstance(doc, Document) and doc.doc_id == chunk.doc_id
    c = hash_qa.ask(QUESTIONS[0]).citations[0]
    row = next(i for i, ch in enumerate(hash_qa.chunks) if ch.chunk_id == c.chunk_id)
    assert (c.text, c.start, c.end, c.doc_id) == (hash_qa.chunks[row].text, hash_qa.chunks[row].start,
                                                  hash_qa.chunks[row].end, hash_qa.chunks[row].doc_id)


def test_threads_with_different_settings_do_not_see_each_other(hash_qa):
    """One QA shared by threads (as the app shares it): each call's settings are its own."""
    variants = [SearchSettings(k=k, mode=mode) for k in (1, 3) for mode in ("hybrid", "bm25", "dense")]
    expected = {(s, q): hash_qa.search(q, s) for s in variants for q in QUESTIONS}
    defaults = hash_qa.settings
    errors = []

    def work(offset: int) -> None:
        for i in range(60):
            s, q = variants[(offset + i) % len(variants)], QUESTIONS[(offset + 2 * i) % len(QUESTIONS)]
            if hash_qa.search(q, s) != expected[(s, q)]:
                errors.append((s, q))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and hash_qa.settings == defaults == SearchSettings()


def test_load_takes_default_settings_and_info_reports_them(hash_qa, tmp_path):
    qa = QA.load(tmp_path / "index", settings=SearchSettings(k=2, rrf_k=30))
    assert len(qa.search(QUESTIONS[0])) == 2
    assert qa.info()["fusion"] == {"k": 30, **SearchSettings(rrf_k=30).fusion_settings()}
    assert hash_qa.info()["fusion"] == {"k": RRF_K, **SearchSettings().fusion_settings()}


def test_open_or_build_builds_only_when_the_index_does_not_fit(news_dir, tmp_path):
    index, reasons = tmp_path / "index", []
    qa = QA.open_or_build([news_dir], index, "hash-64", on_build=reasons.append)
    assert len(reasons) == 1 and "no index" in reasons[0].lower() and len(qa.docs) == 6
    first = current_generation(index)
    QA.open_or_build([news_dir], index, "hash-64", on_build=reasons.append)
    assert len(reasons) == 1 and current_generation(index) == first  # up to date: opened, not built
    (news_dir / "nieuw.txt").write_text("date 2023-06 Een nieuw artikel over de Tweede Kamer.", encoding="utf-8")
    qa = QA.open_or_build([news_dir], index, "hash-64", on_build=reasons.append)
    assert "corpus changed" in reasons[-1] and len(qa.docs) == 7 and stale_reason(index, [news_dir]) is None
    QA.open_or_build([news_dir], index, "hash-32", on_build=reasons.append)
    assert "hash-64" in reasons[-1] and "hash-32" in reasons[-1]  # another model: rebuilt with it


def test_open_or_build_without_follow_only_builds_a_missing_index(news_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("Een artikel over iets anders.", encoding="utf-8")
    index, reasons = tmp_path / "index", []
    QA.build([other], index, "hash-64")
    qa = QA.open_or_build([news_dir], index, "hash-64", follow=False, on_build=reasons.append)
    assert not reasons and len(qa.docs) == 1  # an index of another corpus is served as it is
    (current_generation(index) / "vectors.npy").write_bytes(b"damaged")
    with pytest.raises(IndexCorruptError, match="qa build"):
        QA.open_or_build([news_dir], index, "hash-64", follow=False)
    with pytest.raises(IndexMissingError):
        QA.load(tmp_path / "nowhere")
    assert len(QA.open_or_build([news_dir], tmp_path / "nowhere", "hash-64", follow=False).docs) == 6


def test_build_records_the_corpus_it_read_in_one_walk(news_dir, tmp_path):
    (news_dir / "kapot.txt").write_bytes(b"\xff\xfe niet utf-8")
    with pytest.warns(UserWarning, match="kapot.txt"):
        qa = QA.build([news_dir], tmp_path / "index", "hash-64", skip_bad=True)
    files = {f["path"] for f in qa.manifest["corpus"]["files"]}
    assert str(news_dir / "kapot.txt") in files and len(files) == 7  # the skipped file is recorded too
    assert stale_reason(tmp_path / "index", [news_dir]) is None
