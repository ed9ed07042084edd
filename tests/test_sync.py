"""Syncing an index with its corpus: equivalence with a fresh build, reuse, and what a sync refuses.

The property tests drive random sequences of article edits (files and JSONL lines added,
changed, removed, touched, metadata-only edits, texts copied between articles) through
`QA.sync` and compare the index after every sync with a fresh `QA.build` of the same corpus:
the same chunks and documents in the same order, bit-identical vectors, bit-identical BM25
weights (and scores equal to rank_bm25 on the new corpus), identical exact dense results, and,
for a kept HNSW graph, recall within its bound. The embedder is the hashing fake (deterministic
per text), wrapped to record what it is asked to embed: nothing that was indexed before may be
embedded again. Profiles: "ci" (SEQUENCES_CI sequences, the default) or "extended"
(SEQUENCES_EXTENDED) with HYPOTHESIS_PROFILE=extended.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_news
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi
from test_integrity import _rewrite_manifest

from qa import QA, CorpusError, IndexFormatError, SyncError, store
from qa.chunking import ChunkSettings
from qa.corpus import scan_corpus
from qa.dense import MAX_MASKED_SHARE
from qa.embedding import HashEmbedder
from qa.errors import RebuildWarning
from qa.index import chunk_sha256, open_rows
from qa.lexical import Analyzer
from qa.store import CURRENT, current_generation

SEQUENCES_CI, SEQUENCES_EXTENDED = 30, 250
EXTENDED = os.environ.get("HYPOTHESIS_PROFILE") == "extended"
PROPERTY = settings(max_examples=SEQUENCES_EXTENDED if EXTENDED else SEQUENCES_CI, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SMALL_CHUNKS = ChunkSettings(max_words=12, overlap=1)  # several chunks per short article


class Recording(HashEmbedder):
    """The hashing fake, recording every text it embeds."""

    def __init__(self, dim: int = 32):
        super().__init__(dim)
        self.texts: list[str] = []

    def encode_passages(self, texts, *, progress=False):
        self.texts += list(texts)
        return super().encode_passages(texts)


# --- the corpus model and its edits -----------------------------------------------------------

WORDS = ("kabinet minister gemeente rechter politie inwoners bedrijven inflatie prijzen energie woningen "
         "onderzoek ziekenhuis klimaat dijken boeren stikstof partij zetels debat miljoen procent "
         "Amsterdam Rotterdam Utrecht Groningen Oekraïne zei meldde besloot 400 2,5 1.127").split()
sentence = st.lists(st.sampled_from(WORDS), min_size=2, max_size=9).map(lambda w: " ".join(w).capitalize() + ".")
text = st.lists(sentence, min_size=1, max_size=7).map(" ".join)
FILES = ("a.txt", "b.md", "sub/c.txt", "d.txt")
IDS = ("n1", "n2", "n3", "n4", "n5")
edit = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(FILES), text),
    st.tuples(st.just("delete"), st.sampled_from(FILES)),
    st.tuples(st.just("line"), st.sampled_from(IDS), text),
    st.tuples(st.just("drop"), st.sampled_from(IDS)),
    st.tuples(st.just("title"), st.sampled_from(IDS), st.sampled_from(["Titel", "Andere titel", None])),
    st.tuples(st.just("copy"), st.sampled_from(IDS), st.sampled_from(FILES)),  # an article's text again elsewhere
    st.tuples(st.just("touch"), st.sampled_from(FILES)),
)
steps = st.lists(st.lists(edit, min_size=1, max_size=4), min_size=1, max_size=5)


class Corpus:
    """A folder of .txt/.md files and one JSONL file, edited as the strategies say."""

    def __init__(self, folder: Path):
        self.folder, self.files, self.lines = folder, {}, {}
        folder.mkdir(parents=True)

    def apply(self, change) -> None:
        kind, key, *rest = change
        if kind == "write":
            self.files[key] = rest[0]
        elif kind == "delete":
            self.files.pop(key, None)
        elif kind == "line":
            self.lines[key] = {**self.lines.get(key, {}), "id": key, "text": rest[0]}
        elif kind == "drop":
            self.lines.pop(key, None)
        elif kind == "title" and key in self.lines:
            self.lines[key] = {k: v for k, v in {**self.lines[key], "title": rest[0]}.items() if v is not None}
        elif kind == "copy" and key in self.lines:
            self.files[rest[0]] = self.lines[key]["text"]
        elif kind == "touch" and key in self.files:
            (self.folder / key).touch()
        self.write()

    def write(self) -> None:
        for name in FILES:
            path = self.folder / name
            if name in self.files:
                path.parent.mkdir(exist_ok=True)
                path.write_text(f"date 2024-0{1 + FILES.index(name)} {self.files[name]}", encoding="utf-8")
            else:
                path.unlink(missing_ok=True)
        feed = self.folder / "feed.jsonl"
        if self.lines:
            feed.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.lines.values()), encoding="utf-8")
        else:
            feed.unlink(missing_ok=True)

    @property
    def empty(self) -> bool:
        return not self.files and not self.lines


# --- comparing an index with a fresh build -----------------------------------------------------

def _terms(qa: QA) -> list[list[str]]:
    analyzer = Analyzer()
    return [analyzer.analyze(c.text, c.lang) for c in qa.chunks]


def assert_same_as_fresh(synced: QA, fresh: QA, *, exact_dense: bool = True) -> None:
    """The synced index answers like the fresh build: every row, weight and result."""
    assert [dataclasses.asdict(c) for c in synced.chunks] == [dataclasses.asdict(c) for c in fresh.chunks]
    assert [synced.docs[d] for d in synced.docs] == [fresh.docs[d] for d in fresh.docs]
    assert np.array_equal(synced.vectors, fresh.vectors)
    assert synced.bm25.terms == fresh.bm25.terms and synced.bm25._params == fresh.bm25._params
    docs = _terms(synced)
    vocabulary = synced.bm25.terms
    queries = [[t] for t in vocabulary] + [vocabulary[i::7][:4] for i in range(7)]
    oracle = BM25Okapi(docs) if any(docs) else None
    if oracle is not None:  # the one documented deviation (lexical.py): every idf <= 0 gets the floor
        for t in vocabulary:
            if 2 * sum(t in d for d in docs) >= len(docs):
                oracle.idf[t] = synced.bm25._params["idf_floor"]
    for query in queries:
        ours = synced.bm25.scores(query)
        assert np.array_equal(ours, fresh.bm25.scores(query)), query
        if oracle is not None:
            np.testing.assert_allclose(ours, oracle.get_scores(query), rtol=1e-9, atol=0)
    probes = [np.asarray(v) for v in synced.vectors[:8]] + [np.eye(synced.dense.dim, dtype=np.float32)[3]]
    rows = synced.index.manifest["counts"]["chunks"]
    for q in probes:
        found = synced.dense.search(q, 5)
        if exact_dense:
            assert found == fresh.dense.search(q, 5)
        else:  # HNSW: every result a live row, and recall@5 against exact search within the bound
            assert len({r for r, _ in found}) == len(found) == min(5, rows)
            exact = np.sort(np.asarray(synced.vectors) @ q)[::-1]
            cut = exact[min(5, rows) - 1] - 1e-3  # fp16 storage; ties count as found
            assert sum(float(np.asarray(synced.vectors[r]) @ q) >= cut for r, _ in found) >= 0.99 * len(found)


def _sync_and_compare(corpus: Corpus, index: Path, fresh_dir: Path, embedder: Recording, dense: str) -> None:
    before = {c.chunk_id: c.text for c in QA.load(index, embedder=embedder).chunks}
    old_texts = set(before.values())
    embedder.texts.clear()
    if corpus.empty:
        with pytest.raises(CorpusError):
            QA.sync([corpus.folder], index, embedder=embedder)
        return
    report = QA.sync([corpus.folder], index, embedder=embedder)
    synced = QA.load(index, embedder=embedder)
    fresh = QA.build([corpus.folder], fresh_dir, embedder=HashEmbedder(32), chunking=SMALL_CHUNKS, dense=dense)
    assert_same_as_fresh(synced, fresh, exact_dense=dense == "flat")
    # Nothing indexed before is embedded again; every new text is embedded once.
    new_texts = {c.text for c in synced.chunks} - old_texts
    assert set(embedder.texts) == new_texts and len(embedder.texts) == len(new_texts)
    c = report.chunks
    assert c["total"] == len(synced.chunks) and c["embedded"] + c["reused"] == c["total"]
    # Every old chunk whose text is gone is removed; every one that is not, some new row reuses.
    texts_now = {x.text for x in synced.chunks}
    assert c["removed"] >= sum(t not in texts_now for t in before.values())
    assert len(before) - c["removed"] <= c["reused"]
    articles = {a.doc_id for a in scan_corpus([corpus.folder]).articles}
    assert report.documents["added"] + report.documents["changed"] + report.documents["unchanged"] == len(articles)
    if dense == "hnsw":
        described = synced.dense.describe()
        assert described["kind"] == "hnsw"
        assert described.get("masked", 0) <= MAX_MASKED_SHARE * (described["count"] + described.get("masked", 0))
    names = {p.name for p in index.iterdir()}
    assert not [n for n in names if n.startswith((".tmp-", f".{CURRENT}."))]
    assert len([n for n in names if n.startswith("g-")]) <= 2


def _run_sequence(sequence, dense: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = Corpus(tmp / "corpus")
        corpus.apply(("write", "a.txt", "Het kabinet besloot. De minister zei 400 woningen."))
        embedder = Recording(32)
        QA.build([corpus.folder], tmp / "index", embedder=embedder, chunking=SMALL_CHUNKS, dense=dense)
        for i, changes in enumerate(sequence):
            for change in changes:
                corpus.apply(change)
            _sync_and_compare(corpus, tmp / "index", tmp / f"fresh-{i}", embedder, dense)


@PROPERTY
@given(steps)
def test_any_sequence_of_syncs_equals_a_fresh_build(sequence):
    _run_sequence(sequence, "flat")


@settings(PROPERTY, max_examples=PROPERTY.max_examples // 3)
@given(steps)
def test_a_kept_hnsw_graph_stays_within_its_recall_bound(sequence):
    _run_sequence(sequence, "hnsw")


# --- reuse --------------------------------------------------------------------------------------

def _feed(path: Path, n: int, changed: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"art-{i}", "text": f"Artikel {i} gaat over de gemeente {i % 7}. De raad besloot {i} euro uit te geven."
             + (" Er kwam een correctie." if i == changed else "")} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_one_changed_line_in_a_big_jsonl_embeds_only_that_article(tmp_path):
    feed = _feed(tmp_path / "corpus" / "feed.jsonl", 300)
    embedder = Recording(32)
    QA.build([feed.parent], tmp_path / "index", embedder=embedder)
    before = QA.load(tmp_path / "index", embedder=embedder)
    old_vectors = {c.chunk_id: np.array(before.vectors[i]) for i, c in enumerate(before.chunks)}
    embedder.texts.clear()
    _feed(feed, 300, changed=123)
    report = QA.sync([feed.parent], tmp_path / "index", embedder=embedder)
    assert report.documents == {"added": 0, "changed": 1, "removed": 0, "unchanged": 299, "kept": 0}
    assert report.chunks["embedded"] == 1 and report.chunks["reused"] == 299 and report.chunks["removed"] == 1
    assert len(embedder.texts) == 1 and "correctie" in embedder.texts[0]
    after = QA.load(tmp_path / "index", embedder=embedder)
    for i, c in enumerate(after.chunks):
        if c.doc_id != "art-123":
            assert after.vectors[i].tobytes() == old_vectors[c.chunk_id].tobytes()  # bit-identical
    assert after.ask("Welke correctie kwam er?").citations[0].doc_id == "art-123"


def test_a_sync_without_changes_writes_nothing(news_dir, tmp_path):
    QA.build([news_dir], tmp_path / "index", model="hash-64")
    live = current_generation(tmp_path / "index")
    report = QA.sync([news_dir], tmp_path / "index")
    assert not report.written and report.documents["unchanged"] == 6 and current_generation(tmp_path / "index") == live


def test_a_sync_without_changes_removes_what_a_killed_sync_left(news_dir, tmp_path):
    index = tmp_path / "index"
    QA.build([news_dir], index, model="hash-64")
    made_from = current_generation(index)
    (news_dir / "extra.txt").write_text("date 2023-04 Een nieuw bericht over de haven van Rotterdam.", encoding="utf-8")
    QA.sync([news_dir], index)
    live = current_generation(index)
    # What a build killed after writing its generation and a sync killed after its swap leave: a
    # never-live generation (newer than the one the live one was made from), an older one, and a
    # temporary folder.
    for name in ("g-20000101T000000-aaaaaa", "g-29991231T235959-bbbbbb"):
        shutil.copytree(made_from, index / name)
    (index / ".tmp-g-20000101T000002-cccccc").mkdir()
    assert not QA.sync([news_dir], index).written
    assert sorted(p.name for p in index.iterdir() if not p.name.startswith(".lock")) == sorted(
        [live.name, made_from.name, store.CURRENT])


def test_another_model_or_chunking_embeds_everything_again(news_dir, tmp_path):
    index = tmp_path / "index"
    QA.build([news_dir], index, model="hash-64")
    with pytest.warns(RebuildWarning, match="every chunk is embedded again: model changed"):  # said before it starts
        report = QA.sync([news_dir], index, model="hash-32")
    assert "model changed" in report.rebuilt and report.chunks["reused"] == 0 and report.chunks["embedded"] == 6
    assert QA.load(index).manifest["model"]["name"] == "hash-32"
    with pytest.warns(RebuildWarning, match="chunking changed"):
        report = QA.sync([news_dir], index, chunking=ChunkSettings(max_words=10))
    assert "chunking changed" in report.rebuilt and report.chunks["reused"] == 0
    assert QA.sync([news_dir], index).rebuilt is None  # the index's own settings by default


def test_an_outdated_analyzer_is_analysed_again_without_embedding(news_dir, tmp_path):
    index = tmp_path / "index"
    QA.build([news_dir], index, model="hash-64")
    _rewrite_manifest(current_generation(index), lambda m: m["analyzer"].update(version="0-old"))
    with pytest.raises(IndexFormatError, match="analyzer"):
        QA.load(index)
    reasons, reports = [], []
    qa = QA.open_or_build([news_dir], index, "hash-64", on_build=reasons.append, on_sync=reports.append)
    assert "analyzer" in reasons[0]
    assert reports[0].chunks == {"embedded": 0, "reused": 6, "removed": 0, "total": 6, "analysed": 6}
    assert qa.manifest["analyzer"]["version"] == Analyzer.VERSION and qa.ask("inflatie").citations[0].doc_id == "economie.txt"


def test_an_index_written_before_syncs_reuses_its_vectors_by_chunk_text(news_dir, tmp_path):
    index = tmp_path / "index"
    QA.build([news_dir], index, model="hash-64")
    folder = current_generation(index)
    sync_files = [n for n in json.loads((folder / "manifest.json").read_text())["files"]
                  if n.startswith(("terms_", "chunk_sha", "doc_"))]
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in sync_files:
        (folder / name).unlink()
        del manifest["files"][name]
    manifest[store.MANIFEST_CHECKSUM] = store.manifest_checksum(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    QA.load(index)  # still served
    with pytest.raises(SyncError, match="older version"):
        QA.remove(["sport.txt"], index)
    (news_dir / "nieuw.txt").write_text("date 2024-02 De NS reed weer op tijd.", encoding="utf-8")
    report = QA.sync([news_dir], index)
    assert report.documents["changed"] == 6 and report.documents["added"] == 1
    assert report.chunks["reused"] == 6 and report.chunks["embedded"] == 1
    assert set(sync_files) <= set(QA.load(index).manifest["files"])


# --- add and remove -----------------------------------------------------------------------------

def test_add_and_remove_articles_by_file_and_id(news_dir, tmp_path):
    index = tmp_path / "index"
    QA.build([news_dir], index, model="hash-64")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "sport.txt").write_text("date 2022-12 Argentinië won de finale. Messi huilde.", encoding="utf-8")
    _feed(extra / "feed.jsonl", 3)
    report = QA.add([extra / "sport.txt", extra / "feed.jsonl"], index)
    assert report.documents == {"added": 3, "changed": 1, "removed": 0, "unchanged": 5, "kept": 0}
    assert report.chunks["embedded"] == 4
    qa = QA.load(index)
    assert "Messi huilde" in " ".join(c.text for c in qa.chunks) and qa.docs["art-2"].source.endswith("feed.jsonl")
    assert QA.load(index).manifest["derived"]["by"] == "add"
    with pytest.raises(SyncError, match="nothing was removed"):
        QA.remove(["art-1", "nope"], index)
    report = QA.remove(["art-1", "weer.md"], index)
    assert report.documents["removed"] == 2 and "art-1" not in QA.load(index).docs
    # A sync makes the index equal to the folder again: what add brought from elsewhere leaves.
    report = QA.sync([news_dir], index)
    assert report.documents["removed"] == 2 and report.documents["changed"] == 1 and report.documents["added"] == 1
    assert sorted(QA.load(index).docs) == sorted(p.name for p in news_dir.iterdir())


def test_a_sync_brings_back_what_remove_took_from_a_file_still_in_the_folder(tmp_path):
    feed = _feed(tmp_path / "corpus" / "feed.jsonl", 5)
    index = tmp_path / "index"
    QA.build([feed.parent], index, model="hash-64")
    QA.remove(["art-2"], index)
    assert QA.sync([feed.parent], index).documents["added"] == 1 and "art-2" in QA.load(index).docs
    assert not QA.add([feed], index).written  # the same articles from the same file: nothing to write
    copy = feed.parent.parent / "copy.jsonl"
    copy.write_bytes(feed.read_bytes())
    report = QA.add([copy], index)  # the same texts from another file: new records, no chunk touched
    assert report.documents["changed"] == 5 and report.chunks["reused"] == report.chunks["total"]
    assert report.chunks["analysed"] == 0 and QA.load(index).docs["art-0"].source == str(copy)


def test_skip_bad_keeps_what_was_indexed_from_a_file_that_cannot_be_read(news_dir, tmp_path):
    index = tmp_path / "index"
    _feed(news_dir / "feed.jsonl", 4)
    QA.build([news_dir], index, model="hash-64")
    (news_dir / "sport.txt").write_bytes(b"\xff\xfe kapot")           # was indexed, unreadable now
    text = (news_dir / "feed.jsonl").read_text(encoding="utf-8").splitlines()
    (news_dir / "feed.jsonl").write_text("\n".join([text[0], "{kapot", *text[2:]]) + "\n", encoding="utf-8")
    (news_dir / "nieuw.txt").write_text("date 2024-02 De NS reed weer op tijd.", encoding="utf-8")
    (news_dir / "ook-kapot.txt").write_bytes(b"\x00\x01")              # new and unreadable
    live = current_generation(index)
    with pytest.raises(CorpusError, match="feed.jsonl:2"):  # the first bad thing it reads
        QA.sync([news_dir], index)
    assert current_generation(index) == live
    with pytest.warns(UserWarning) as caught:
        report = QA.sync([news_dir], index, skip_bad=True)
    assert {"sport.txt", "feed.jsonl:2", "ook-kapot.txt"} <= {w for w in ("sport.txt", "feed.jsonl:2", "ook-kapot.txt")
                                                             if any(w in str(c.message) for c in caught)}
    assert report.documents == {"added": 1, "changed": 0, "removed": 0, "unchanged": 8, "kept": 2}
    qa = QA.load(index)
    assert {"sport.txt", "art-1", "nieuw.txt"} <= set(qa.docs) and "ook-kapot.txt" not in qa.docs


# --- the dense index ------------------------------------------------------------------------------

def test_hnsw_graph_is_kept_and_built_again_when_too_much_is_masked(tmp_path):
    corpus = tmp_path / "corpus"
    _feed(corpus / "feed.jsonl", 200)
    index = tmp_path / "index"
    QA.build([corpus], index, model="hash-64", dense="hnsw")
    rows = [{"id": f"art-{i}", "text": f"Artikel {i} gaat over de gemeente {i % 7}. De raad besloot {i} euro uit te geven."}
            for i in range(10, 200)] + [{"id": "new", "text": "Een nieuw artikel over dijken."}]
    (corpus / "feed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = QA.sync([corpus], index)
    assert report.dense == "hnsw graph kept: 1 nodes inserted, 10 masked"
    qa = QA.load(index)
    assert qa.dense.describe()["masked"] == 10 and len(qa.dense) == len(qa.chunks) == 191
    assert qa.chunks[qa.search("dijken", k=1, mode="dense")[0].row].chunk_id == "new#0"
    (corpus / "feed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:120]), encoding="utf-8")
    report = QA.sync([corpus], index)
    assert report.dense.startswith("hnsw built again") and QA.load(index).dense.describe().get("masked") is None


# --- the command line ------------------------------------------------------------------------------

def test_cli_sync_add_remove_print_the_report(news_dir, tmp_path):
    from qa.cli import main

    index = str(tmp_path / "index")
    QA.build([news_dir], index, model="hash-64")
    (news_dir / "nieuw.txt").write_text("date 2024-02 De NS reed weer op tijd.", encoding="utf-8")
    out = _run(main, ["sync", str(news_dir), "--index", index, "--json"])
    report = json.loads(out)
    assert set(report) >= {"documents", "chunks", "seconds"}
    assert report["documents"] == {"added": 1, "changed": 0, "removed": 0, "unchanged": 6, "kept": 0}
    assert {k: report["chunks"][k] for k in ("embedded", "reused", "removed", "total")} == \
        {"embedded": 1, "reused": 6, "removed": 0, "total": 7}
    assert "documents: 0 added, 0 changed, 1 removed" in _run(main, ["remove", "nieuw.txt", "--index", index])
    assert "1 added" in _run(main, ["add", str(news_dir / "nieuw.txt"), "--index", index])


def _run(main, argv) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def test_open_or_build_syncs_instead_of_rebuilding(tmp_path):
    news = write_news(tmp_path / "news")
    reports = []
    QA.open_or_build([news], tmp_path / "index", "hash-64", on_sync=reports.append)
    (news / "nieuw.txt").write_text("date 2024-02 De NS reed weer op tijd.", encoding="utf-8")
    qa = QA.open_or_build([news], tmp_path / "index", "hash-64", on_sync=reports.append)
    assert reports[-1].chunks["reused"] == 6 and reports[-1].chunks["embedded"] == 1 and len(qa.docs) == 7
    assert chunk_sha256(qa.chunks[0].text) == bytes(open_rows(tmp_path / "index").chunk_sha256[0])


def test_with_the_real_model_unchanged_vectors_are_bit_identical_and_answers_match_a_fresh_build(
        news_dir, tmp_path, real_embedder):
    index = tmp_path / "index"
    before = QA.build([news_dir], index, embedder=real_embedder)
    old = {c.chunk_id: before.vectors[i].tobytes() for i, c in enumerate(before.chunks)}
    (news_dir / "falkenberg.txt").write_text(
        "date 2024-03 De Zweedse vulkanoloog Ingrid Falkenberg ontdekte op Spitsbergen een onbekende warmwaterbron. "
        "Volgens Falkenberg is de bron minstens drieduizend jaar oud.", encoding="utf-8")
    (news_dir / "weer.md").unlink()
    report = QA.sync([news_dir], index, embedder=real_embedder)
    assert report.chunks == {"embedded": 1, "reused": 5, "removed": 1, "total": 6, "analysed": 1}
    synced = QA.load(index, embedder=real_embedder)
    fresh = QA.build([news_dir], tmp_path / "fresh", embedder=real_embedder)
    assert [dataclasses.asdict(c) for c in synced.chunks] == [dataclasses.asdict(c) for c in fresh.chunks]
    for i, c in enumerate(synced.chunks):
        if c.chunk_id in old:
            assert synced.vectors[i].tobytes() == old[c.chunk_id]
    # Embedded in another batch than the fresh build's, a vector may differ in its last bits.
    assert float(np.min(np.sum(np.asarray(synced.vectors) * np.asarray(fresh.vectors), axis=1))) > 0.9999
    for question in ("Wat ontdekte vulkanoloog Ingrid Falkenberg op Spitsbergen?", "What did the volcanologist find?",
                     "Hoeveel vierkante kilometer is bevrijd?", "Wie won het WK voetbal?"):
        ours, theirs = synced.ask(question), fresh.ask(question)
        assert [c.chunk_id for c in ours.citations] == [c.chunk_id for c in theirs.citations], question
        assert ours.answer_found == theirs.answer_found
