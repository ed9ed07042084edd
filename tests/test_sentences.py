"""Sentence vectors kept with an index (qa/sentences.py): the store, builds and syncs that keep it,
and answers that use it instead of embedding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa import QA, store
from qa.embedding import HashEmbedder
from qa.errors import IndexCorruptError, RebuildWarning
from qa.sentences import FILES, SentenceStore, quantise, sentence_spans


class Counting(HashEmbedder):
    """The hash embedder, counting the texts it embeds."""

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []

    def encode_passages(self, texts, *, progress=False):
        self.texts.extend(texts)
        return super().encode_passages(texts)


def sentences_of(texts):
    return {t[a:b] for t in texts for a, b in sentence_spans(t)}


def test_int8_rows_keep_the_direction():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((500, 384)).astype(np.float32)
    vectors[:, 0] += 3  # a shared direction, as real embeddings have
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    q, scales = quantise(vectors)
    back = q.astype(np.float32) * scales[:, None]
    cos = (back * vectors).sum(1) / np.linalg.norm(back, axis=1)
    assert q.dtype == np.int8 and cos.min() >= 0.9999


def test_store_finds_what_it_holds_and_merges_in_key_order():
    e = HashEmbedder()
    a_text = ["Eerste zin.", "Tweede zin.", "Eerste zin."]
    a = SentenceStore.of(a_text, e.encode_passages(a_text))
    assert len(a) == 2 and np.all(np.diff(a.keys.astype(np.float64)) > 0)
    rows = a.rows(["Tweede zin.", "Derde zin.", "Eerste zin."])
    assert rows[1] == -1 and rows[0] >= 0 and rows[2] >= 0
    np.testing.assert_allclose(a.vectors_at(rows[[0, 2]]), e.encode_passages(["Tweede zin.", "Eerste zin."]), atol=0.02)
    assert a.missing(["Eerste zin. Derde zin!"]) == ["Derde zin!"]
    new = ["Derde zin!", "Vierde zin?"]
    merged = a.merged(SentenceStore.of(new, e.encode_passages(new)))
    assert len(merged) == 4 and np.all(np.diff(merged.keys.astype(np.float64)) > 0)
    every = ["Eerste zin.", "Tweede zin.", "Derde zin!", "Vierde zin?"]
    got = merged.vectors_at(merged.rows(every))
    assert (got * e.encode_passages(every)).sum(1).min() >= 0.999
    assert SentenceStore.empty(4).rows(["x"]).tolist() == [-1]


def test_a_build_keeps_every_sentence_and_answers_without_embedding(tmp_path, news_dir):
    e = Counting()
    qa = QA.build([news_dir], tmp_path / "with", embedder=e, sentence_vectors=True)
    chunks = [qa.chunks[i].text for i in range(len(qa.chunks))]
    assert len(qa.index.sentences) == len(sentences_of(chunks)) == qa.info()["sentences"]["count"]
    plain = QA.build([news_dir], tmp_path / "without", embedder=HashEmbedder())
    assert plain.index.sentences is None and plain.info()["sentences"] is None
    assert not any(name in plain.manifest["files"] for name in FILES)
    e.texts.clear()
    for question in ["Hoeveel vierkante kilometer is bevrijd?", "Wie won het WK voetbal?", "Waar daalde de inflatie?"]:
        kept, embedded = qa.ask(question), plain.ask(question)
        assert [c.highlight.text for c in kept.citations] == [c.highlight.text for c in embedded.citations]
        assert [c.highlight.score for c in kept.citations] == pytest.approx([c.highlight.score for c in embedded.citations],
                                                                             abs=0.01)
    assert e.texts == []  # no sentence embedded when asking
    assert len(qa._sentence_vectors) == 0


def test_a_sync_embeds_only_new_sentences_and_keeps_the_rest(tmp_path, news_dir):
    e = Counting()
    index = tmp_path / "index"
    QA.build([news_dir], index, embedder=e, sentence_vectors=True)
    before = QA.load(index, embedder=e).index.sentences
    (news_dir / "nieuw.txt").write_text("date 2023-04 De Tweede Kamer stemde in met de wet. Dat was verwacht.",
                                        encoding="utf-8")
    e.texts.clear()
    report = QA.sync([news_dir], index, embedder=e)
    assert sorted(e.texts) == sorted(["De Tweede Kamer stemde in met de wet. Dat was verwacht.",
                                      "De Tweede Kamer stemde in met de wet.", "Dat was verwacht."])
    assert report.sentences == {"embedded": 2, "total": len(before) + 2}
    after = QA.load(index, embedder=e)
    assert len(after.index.sentences) == len(before) + 2
    assert np.all(after.index.sentences.rows(sentences_of([after.chunks[i].text for i in range(len(after.chunks))])) >= 0)
    assert (after.ask("Wat stemde de Tweede Kamer?").citations[0].highlight.text
            in {"De Tweede Kamer stemde in met de wet.", "Dat was verwacht."})
    # Dropped and taken up again by a sync: only the sentence vectors change.
    e.texts.clear()
    assert QA.sync([news_dir], index, embedder=e).sentences == {"embedded": 0, "total": len(before) + 2}  # up to date
    assert QA.sync([news_dir], index, embedder=e, sentence_vectors=False).sentences is None
    assert QA.load(index, embedder=e).index.sentences is None and e.texts == []
    QA.sync([news_dir], index, embedder=e, sentence_vectors=True)
    assert len(QA.load(index, embedder=e).index.sentences) == len(before) + 2
    # `qa add` keeps them up to date too.
    extra = news_dir.parent / "extra.txt"
    extra.write_text("date 2023-05 Het kabinet viel op vrijdag. Niemand had het zien aankomen.", encoding="utf-8")
    assert QA.add([extra], index, embedder=e).sentences["embedded"] == 2
    after = QA.load(index, embedder=e)
    assert after.index.sentences.rows(["Het kabinet viel op vrijdag.", "Niemand had het zien aankomen."]).min() >= 0


def test_shards_refuse_sentence_vectors_with_a_clear_message(tmp_path, news_dir, capsys):
    from qa.cli import main

    assert main(["build", str(news_dir), "--index", str(tmp_path / "root"), "--shards", "2", "--sentence-vectors"]) != 0
    assert "--sentence-vectors is not available with --shards" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_damaged_sentence_vectors_are_reported(tmp_path, news_dir):
    index = tmp_path / "index"
    QA.build([news_dir], index, embedder=HashEmbedder(), sentence_vectors=True)
    folder, manifest = store.open_index(index)
    with open(folder / "sentence_vectors.npy", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x7f" if f.read(1) != b"\x7f" else b"\x00")
    with pytest.raises(IndexCorruptError):
        QA.load(index, embedder=HashEmbedder())
    # A sync mends them: only the sentences are embedded again, the chunks' vectors are reused.
    with pytest.warns(RebuildWarning, match="sentence vectors cannot be reused"):
        report = QA.sync([news_dir], index, embedder=HashEmbedder())
    assert report.chunks["embedded"] == 0 and report.sentences["embedded"] == report.sentences["total"] > 0
    assert QA.load(index, embedder=HashEmbedder()).index.sentences is not None
    # Damage elsewhere: the sync embeds everything again, and still keeps sentence vectors.
    folder, _ = store.open_index(index)
    (folder / "chunk_sha256.npy").write_bytes(b"not numpy")
    report = QA.sync([news_dir], index, embedder=HashEmbedder())
    assert "cannot be reused" in report.rebuilt and report.sentences["embedded"] == report.sentences["total"] > 0
    # A manifest that records another count (checksummed, so re-signed here) is refused too.
    QA.build([news_dir], index, embedder=HashEmbedder(), sentence_vectors=True)
    folder, manifest = store.open_index(index)
    manifest["sentences"]["count"] += 1
    manifest[store.MANIFEST_CHECKSUM] = store.manifest_checksum(manifest)
    (folder / store.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="sentence vectors"):
        QA.load(index, embedder=HashEmbedder())
