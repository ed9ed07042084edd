"""The analyzer and the sparse BM25 index, checked against rank_bm25 as the oracle."""

from __future__ import annotations

import json
import math
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from qa.errors import IndexCorruptError, IndexFormatError
from qa.lexical import IDF_FLOOR, VERSION, Analyzer, BM25Index

XQUAD = Path(__file__).resolve().parents[1] / "data" / "xquad_nl"
PLAIN = Analyzer(stem=False, stopwords=False)


# ---------------------------------------------------------------------------- analyzer


def test_diacritics_are_folded():
    assert PLAIN.analyze("financiële één Oekraïne Zelenski", "nl") == [
        "financiele", "een", "oekraine", "zelenski"]
    decomposed = unicodedata.normalize("NFD", "financiële Oekraïne")
    assert PLAIN.analyze(decomposed, "nl") == ["financiele", "oekraine"]


def test_diacritics_kept_when_not_folding():
    analyzer = Analyzer(stem=False, stopwords=False, fold_diacritics=False)
    decomposed = unicodedata.normalize("NFD", "financiële")
    assert analyzer.analyze(decomposed, "nl") == ["financiële"]


def test_numbers_stay_whole_and_unstemmed():
    text = "De planeet draait in 1.127 dagen, 2,5 procent in 2022. Ruim 10.000 mensen (400)."
    terms = Analyzer().analyze(text, "nl")
    for number in ("1.127", "2,5", "2022", "10.000", "400"):
        assert number in terms
    assert not any(term.endswith((".", ",", ")")) for term in terms)


def test_ordinal_suffix_is_dropped():
    assert PLAIN.analyze("de 19e eeuw, de 21ste eeuw", "nl") == ["de", "19", "eeuw", "de", "21", "eeuw"]


def test_hyphens_and_apostrophes_split():
    assert PLAIN.analyze("Noord-Koreaanse", "nl") == ["noord", "koreaanse"]
    assert Analyzer().analyze("Poetin's leger", "nl") == ["poetin", "leger"]


def test_soft_hyphen_inside_a_word_is_ignored():
    assert PLAIN.analyze("bevrij\u00addingen", "nl") == ["bevrijdingen"]


def test_stop_words_removed():
    assert Analyzer().analyze("de het een van en is dat niet op te zijn", "nl") == []
    assert Analyzer().analyze("the a an of and is that not on to be", "en") == []
    assert Analyzer(stopwords=False, stem=False).analyze("de het", "nl") == ["de", "het"]


def test_dutch_stemming_relates_word_forms():
    analyzer = Analyzer()
    stems = {analyzer.analyze(word, "nl")[0] for word in ("bevrijd", "bevrijding", "bevrijden")}
    assert len(stems) == 1
    assert analyzer.analyze("punten", "nl") == analyzer.analyze("punt", "nl")


def test_english_stemming_for_english_text():
    analyzer = Analyzer()
    assert analyzer.analyze("liberated", "en") == analyzer.analyze("liberation", "en")
    assert analyzer.analyze("How many points did the Panthers score?") == ["point", "panther", "score"]


def test_language_tags():
    analyzer = Analyzer()
    text = "Hoeveel vierkante kilometer is bevrijd?"
    assert analyzer.analyze(text, "nl-NL") == analyzer.analyze(text, "NL") == analyzer.analyze(text, "nl")
    assert analyzer.analyze(text, "de") == analyzer.analyze(text, None) == analyzer.analyze(text, "nl")
    with pytest.raises(TypeError, match="lang"):
        analyzer.analyze(text, 3)


def test_settings_round_trip_and_validation():
    analyzer = Analyzer(stem=False)
    assert Analyzer(**analyzer.to_dict()) == analyzer
    assert Analyzer.VERSION == VERSION and isinstance(VERSION, str)
    with pytest.raises(TypeError, match="stem"):
        Analyzer(stem="yes")


@pytest.mark.parametrize(
    "text", ["", " \t\n", "\x00\x01\x1f", "\ud800abc\udfff", "😀🇳🇱", "\u200f\u202eabc\u202c",
             "zero\u200bwidth", "\ufeff", "_" * 50, "1" * 10000, "a.b,c" * 100],
)
@pytest.mark.parametrize("lang", ["nl", "en", None])
def test_weird_input(text, lang):
    terms = Analyzer().analyze(text, lang)
    assert isinstance(terms, list) and all(isinstance(t, str) and t for t in terms)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=())), st.sampled_from(["nl", "en", None]))
def test_analyze_is_total(text, lang):
    for analyzer in (Analyzer(), PLAIN, Analyzer(fold_diacritics=False)):
        terms = analyzer.analyze(text, lang)
        assert all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in terms)


# ---------------------------------------------------------------------------- oracle


def _oracle_corpus(n_docs: int = 500, vocab_size: int = 300, seed: int = 7):
    """Dutch-looking words with Zipf frequencies; "helft" sits in exactly half the documents."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "ver", "bo", "lij", "de", "straat", "oor", "zon", "ge", "mee", "tin", "ruw"]
    words = []
    while len(words) < vocab_size:
        word = "".join(rng.choice(syllables, size=rng.integers(1, 4)))
        if word not in words and word != "helft":
            words.append(word)
    probs = 1.0 / np.arange(1, vocab_size + 1)
    probs /= probs.sum()
    docs = [list(rng.choice(words, size=rng.integers(5, 120), p=probs)) for _ in range(n_docs)]
    for row in rng.choice(n_docs, size=n_docs // 2, replace=False):
        docs[row].insert(int(rng.integers(len(docs[row]) + 1)), "helft")
    queries = [list(rng.choice(words, size=rng.integers(1, 9), p=probs)) for _ in range(50)]
    queries[3] += ["onbekend"]  # unknown terms count 0
    queries[4] += queries[4][:2]  # repeated terms count twice
    return docs, words, queries


def _expected_top(scores: np.ndarray, k: int) -> list[int]:
    order = np.lexsort((np.arange(scores.size), -scores))
    return [int(row) for row in order[:k] if scores[row] > 0]


def _assert_matches_rank_bm25(docs, queries, **params):
    index = BM25Index.build(docs, **params)
    oracle = BM25Okapi(docs, **params)
    n_half = {t for t, n in _doc_freqs(docs).items() if 2 * n == len(docs)}
    compared = 0
    for query in queries:
        if n_half & set(query):
            continue
        compared += 1
        ours, theirs = index.scores(query), oracle.get_scores(query)
        assert ours.dtype == np.float64 and ours.shape == (len(docs),)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0)
        assert [row for row, _ in index.top_k(query, 10)] == _expected_top(theirs, 10)
    return compared


def _doc_freqs(docs):
    freqs: dict[str, int] = {}
    for doc in docs:
        for term in set(doc):
            freqs[term] = freqs.get(term, 0) + 1
    return freqs


def test_scores_equal_rank_bm25():
    docs, _, queries = _oracle_corpus()
    assert _assert_matches_rank_bm25(docs, queries) >= 45


def test_scores_equal_rank_bm25_other_parameters():
    docs, _, queries = _oracle_corpus(n_docs=201, seed=3)
    assert _assert_matches_rank_bm25(docs, queries, k1=0.9, b=0.4, epsilon=0.5) >= 45


def test_term_in_half_the_documents_gets_the_epsilon_floor():
    docs, _, _ = _oracle_corpus()
    oracle = BM25Okapi(docs)
    assert oracle.idf["helft"] == 0.0  # rank_bm25 ignores it entirely
    # Our only deviation: that idf becomes epsilon * average_idf, like a negative one.
    oracle.idf["helft"] = oracle.epsilon * oracle.average_idf
    index = BM25Index.build(docs)
    for query in (["helft"], ["helft", docs[0][0], docs[1][0]]):
        np.testing.assert_allclose(index.scores(query), oracle.get_scores(query), rtol=1e-9, atol=0)


def test_scores_equal_rank_bm25_on_xquad_passages():
    analyzer = Analyzer()
    with open(XQUAD / "passages.jsonl", encoding="utf-8") as file:
        docs = [analyzer.analyze(json.loads(line)["text"], "nl") for line in file]
    with open(XQUAD / "questions.jsonl", encoding="utf-8") as file:
        queries = [analyzer.analyze(json.loads(line)["question"]) for _, line in zip(range(100), file)]
    assert _assert_matches_rank_bm25(docs, queries) >= 90


# ---------------------------------------------------------------------------- tiny corpora


def test_number_in_half_of_four_chunks_still_counts():
    analyzer = Analyzer()
    chunks = [
        "Het Oekraïense leger heeft in minder dan een week 400 vierkante kilometer bevrijd.",
        "Zelenski sprak over 500 vierkante kilometer.",
        "De inflatie daalde in december naar 9,6 procent.",
        "Bij de verkiezingen haalde de partij 400 stemmen meer.",
    ]
    docs = [analyzer.analyze(chunk, "nl") for chunk in chunks]
    query = analyzer.analyze("400 vierkante kilometer", "nl")
    assert not BM25Okapi(docs).get_scores(query).any()  # the problem: every term has idf 0
    top = BM25Index.build(docs).top_k(query, 4)
    assert top[0][0] == 0
    assert {row for row, _ in top} == {0, 1, 3}
    assert all(score > 0 for _, score in top)


def test_two_chunks_use_the_fixed_floor():
    analyzer = Analyzer()
    docs = [analyzer.analyze("400 vierkante kilometer bevrijd", "nl"),
            analyzer.analyze("De inflatie daalde naar 9,6 procent.", "nl")]
    index = BM25Index.build(docs)
    top = index.top_k(["400"], 5)
    assert [row for row, _ in top] == [0]
    avgdl = (len(docs[0]) + len(docs[1])) / 2
    expected = IDF_FLOOR * 2.5 / (1 + 1.5 * (0.25 + 0.75 * len(docs[0]) / avgdl))
    assert math.isclose(top[0][1], expected, rel_tol=1e-12)


def test_single_document_scores_positive():
    index = BM25Index.build([["zelenski", "kyiv"]])
    assert index.top_k(["kyiv"], 3)[0][0] == 0


# ---------------------------------------------------------------------------- API edges


def test_empty_corpus():
    index = BM25Index.build([])
    assert len(index) == 0
    assert index.scores(["x"]).shape == (0,)
    assert index.top_k(["x"], 5) == []


def test_corpus_of_empty_documents():
    index = BM25Index.build([[], []])
    assert len(index) == 2
    assert not index.scores(["x"]).any()
    assert index.top_k(["x"], 5) == []


def test_unknown_and_empty_queries():
    docs, _, _ = _oracle_corpus(n_docs=20)
    index = BM25Index.build(docs)
    assert not index.scores(["onbekend", "ook"]).any()
    assert index.top_k(["onbekend"], 5) == []
    assert index.top_k([], 5) == []


def test_top_k_ties_go_to_lower_rows_and_k_edges():
    index = BM25Index.build([["a", "b"], ["c"], ["a", "b"], ["a", "b"], ["d"]])
    top = index.top_k(["a"], 2)
    assert [row for row, _ in top] == [0, 2] and top[0][1] == top[1][1]
    assert [row for row, _ in index.top_k(["a"], 100)] == [0, 2, 3]
    assert index.top_k(["a"], 0) == []
    with pytest.raises(ValueError, match="k must be"):
        index.top_k(["a"], -1)


def test_top_k_equals_brute_force_with_masks_ties_repeats_and_unknowns():
    """top_k selects only among rows that can reach the top k; it must return exactly what
    sorting every allowed row by (-score, row) returns, with scores equal to rank_bm25's."""
    docs, words, _ = _oracle_corpus(n_docs=400, seed=11)
    docs = [doc for doc in docs if "helft" not in doc]  # no term in half the documents: rank_bm25's idf applies
    docs += [list(doc) for doc in docs[::7]]  # duplicated documents score exactly alike: ties
    index, oracle = BM25Index.build(docs), BM25Okapi(docs)
    rng = np.random.default_rng(3)
    n = len(docs)
    masks = [None, rng.random(n) < 0.5, rng.random(n) < 0.05, np.zeros(n, bool), np.arange(n) == n - 1]
    rare = [w for w in words if w in oracle.idf][-40:]  # few documents each: the bound often falls back
    checked_ties = 0
    for _ in range(60):
        query = list(rng.choice(words, size=rng.integers(1, 7))) + list(rng.choice(rare, size=rng.integers(0, 2)))
        query += list(rng.choice(query, size=rng.integers(0, 3)))  # repeated terms count again
        if rng.random() < 0.3:
            query.insert(int(rng.integers(len(query) + 1)), "onbekend")  # unknown terms count 0
        scores = index.scores(query)
        np.testing.assert_allclose(scores, oracle.get_scores(query), rtol=1e-12, atol=0)
        for mask in masks:
            allowed = range(n) if mask is None else np.flatnonzero(mask).tolist()
            ranked = sorted((row for row in allowed if scores[row] > 0), key=lambda row: (-scores[row], row))
            for k in (1, 3, 10, n + 5):
                assert index.top_k(query, k, mask) == [(row, float(scores[row])) for row in ranked[:k]]
            checked_ties += any(scores[a] == scores[b] for a, b in zip(ranked[:10], ranked[1:10]))
    assert checked_ties > 0


def test_top_k_from_several_threads_at_once(tmp_path):
    """The app answers several questions at once from one (memory-mapped) index."""
    docs, _, queries = _oracle_corpus(n_docs=300, seed=5)
    BM25Index.build(docs).save(tmp_path)
    index = BM25Index.load(tmp_path)
    mask = np.arange(len(docs)) % 3 != 0
    jobs = [(query, k, rows) for query in queries for k in (1, 10) for rows in (None, mask)] * 4
    alone = [index.top_k(*job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda job: index.top_k(*job), jobs)) == alone


@pytest.mark.parametrize(("param", "value"), [("k1", -1.0), ("b", 1.5), ("epsilon", -0.1),
                                               ("k1", float("nan"))])
def test_bad_parameters(param, value):
    with pytest.raises(ValueError, match=param):
        BM25Index.build([["a"]], **{param: value})


def test_strings_instead_of_token_lists():
    with pytest.raises(TypeError, match="docs_tokens"):
        BM25Index.build(["een hele zin"])
    with pytest.raises(TypeError, match="query_tokens"):
        BM25Index.build([["a"]]).scores("a")


# ---------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, mmap):
    docs, _, queries = _oracle_corpus(n_docs=120)
    docs[5] = ["één", "financiële", "oekraïne"]  # non-ASCII terms survive the JSON
    index = BM25Index.build(docs)
    names = index.save(tmp_path / "idx")
    assert sorted(names) == sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert all(not name.endswith((".pkl", ".pickle")) for name in names)
    loaded = BM25Index.load(tmp_path / "idx", mmap=mmap)
    assert len(loaded) == len(index)
    for query in [*queries, ["één", "oekraïne"]]:
        assert np.array_equal(loaded.scores(query), index.scores(query))
        assert loaded.top_k(query, 10) == index.top_k(query, 10)
    # A loaded index can be written elsewhere, but never over the files it is mapped from.
    loaded.save(tmp_path / "copy")
    assert BM25Index.load(tmp_path / "copy").top_k(queries[0], 10) == index.top_k(queries[0], 10)
    if mmap:
        with pytest.raises(ValueError, match="memory-mapped"):
            loaded.save(tmp_path / "idx")


def test_empty_index_round_trip(tmp_path):
    BM25Index.build([]).save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert len(loaded) == 0 and loaded.top_k(["x"], 3) == []


@pytest.fixture
def saved(tmp_path):
    docs, _, _ = _oracle_corpus(n_docs=50)
    names = BM25Index.build(docs).save(tmp_path)
    return tmp_path, names


@pytest.mark.parametrize("which", range(4))
def test_missing_file(saved, which):
    folder, names = saved
    (folder / names[which]).unlink()
    with pytest.raises(IndexCorruptError, match=names[which]):
        BM25Index.load(folder)


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("name", ["bm25_data.npy", "bm25_indices.npy", "bm25_indptr.npy",
                                  "bm25_vocab.json"])
def test_truncated_file(saved, name, mmap):
    folder, _ = saved
    path = folder / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(IndexCorruptError):
        BM25Index.load(folder, mmap=mmap)


def test_inconsistent_lengths(saved):
    folder, _ = saved
    data = np.load(folder / "bm25_data.npy")
    np.save(folder / "bm25_data.npy", data[:-1], allow_pickle=False)
    with pytest.raises(IndexCorruptError, match="inconsistent"):
        BM25Index.load(folder)


@pytest.mark.parametrize("change", ["drop_term", "duplicate_term", "few_docs"])
def test_vocabulary_disagrees_with_arrays(saved, change):
    folder, _ = saved
    meta = json.loads((folder / "bm25_vocab.json").read_text(encoding="utf-8"))
    if change == "drop_term":
        meta["terms"].pop()
    elif change == "duplicate_term":
        meta["terms"][1] = meta["terms"][0]
    else:
        meta["n_docs"] = 3
    (folder / "bm25_vocab.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(IndexCorruptError):
        BM25Index.load(folder)


def test_wrong_dtype_is_corrupt(saved):
    folder, _ = saved
    indices = np.load(folder / "bm25_indices.npy")
    np.save(folder / "bm25_indices.npy", indices.astype(np.int64), allow_pickle=False)
    with pytest.raises(IndexCorruptError, match="int32"):
        BM25Index.load(folder)


def test_newer_format_is_refused(saved):
    folder, _ = saved
    meta = json.loads((folder / "bm25_vocab.json").read_text(encoding="utf-8"))
    meta["format"] += 1
    (folder / "bm25_vocab.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(IndexFormatError):
        BM25Index.load(folder)
