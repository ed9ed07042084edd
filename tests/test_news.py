"""News-aware retrieval: article dates, filters inside both legs, publishers and links, recency,
wire copies collapsed (qa/news.py and its seams in api.py, index.py, rows.py)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from qa import QA, dense, store
from qa import answer as answer_module
from qa.errors import IndexFormatError
from qa.news import FILES, Filters, as_day, make_filters

TOPICS = ["de haven van Rotterdam", "de boerenprotesten in Gelderland", "het nieuwe kabinet in Den Haag",
          "de overstromingen in Limburg", "de energieprijzen in Groningen", "de verkiezingen in Utrecht"]
PUBLISHERS = ["De Dagkrant", "Noorderbode", "Het Avondblad"]


WORDS = ("gemeente raad plan maatregel bewoners wethouder provincie kosten onderzoek rapport brug school station "
         "water dijk haven schip trein bus fiets markt winkel prijs stroom gas zon wind boer koe melk graan oogst "
         "minister kamer debat motie stem partij leider campagne uitslag zetel regen storm rivier sluis polder").split()


def article(i: int, **fields) -> dict:
    topic = TOPICS[i % len(TOPICS)]
    words = np.random.default_rng(i).choice(WORDS, 60)
    sentences = [" ".join(words[j:j + 12]).capitalize() + "." for j in range(0, 60, 12)]
    text = f"Bericht {i} over {topic}. " + " ".join(sentences) + f" De gemeente meldt {i * 7} nieuwe maatregelen."
    return {"id": f"a{i:03d}", "text": text, "date": f"2022-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "publisher": PUBLISHERS[i % 3], "url": f"https://krant.example/{i}", **fields}


def write_jsonl(folder, records) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")


@pytest.fixture(scope="module")
def dated(tmp_path_factory):
    """60 dated articles of three publishers, plus odd date formats."""
    folder = tmp_path_factory.mktemp("dated")
    records = [article(i) for i in range(60)]
    records[1]["date"] = "2022-03-04T23:30:00+02:00"          # a datetime with a zone: its own day
    records[2]["date"] = 1656633600                            # 2022-07-01 00:00 UTC
    records[3]["date"] = "2022-10"                             # the whole month
    records[4]["date"] = "onbekend"                            # cannot be read
    records[5].pop("date")                                     # no date at all
    records[6]["source"] = records[6].pop("publisher")         # the older alias
    records[7]["url"] = "javascript:alert(1)"
    write_jsonl(folder / "corpus", records)
    return folder, records


@pytest.fixture(scope="module", params=["flat", "hnsw"])
def dated_qa(dated, request):
    folder, _ = dated
    return QA.build([folder / "corpus"], folder / f"index-{request.param}", model="hash-64", dense=request.param)


def test_dates_are_normalised_to_the_days_they_cover(dated):
    folder, _ = dated
    qa = QA.build([folder / "corpus"], folder / "index-dates", model="hash-64")
    doc = {qa.docs.records[i].doc_id: i for i in range(len(qa.docs))}
    days = {d: tuple(date.fromordinal(x) if x else None for x in qa.news.days[i].tolist()) for d, i in doc.items()}
    assert days["a001"] == (date(2022, 3, 4), date(2022, 3, 4))
    assert days["a002"] == (date(2022, 7, 1), date(2022, 7, 1))
    assert days["a003"] == (date(2022, 10, 1), date(2022, 10, 31))
    assert days["a004"] == days["a005"] == (None, None)
    assert qa.docs["a003"].date == "2022-10" and qa.docs["a002"].date == "2022-07-01"
    assert qa.docs["a004"].date == "onbekend"  # shown as given, and reported
    news = qa.info()["news"]
    assert news["undated"] == 2 and set(news["undated_examples"]) == {"a004", "a005"}
    assert news["publishers"] == 3 and news["newest"] == "2022-12-24"
    # row-aligned: every chunk row maps to its own article
    assert all(qa.docs.records[int(qa.news.row_doc[r])].doc_id == qa.chunks[r].doc_id for r in range(len(qa.chunks)))


def test_a_sync_reports_dates_it_cannot_read(dated, tmp_path):
    folder, records = dated
    write_jsonl(tmp_path / "corpus", records)
    report = QA.sync([tmp_path / "corpus"], tmp_path / "index", model="hash-64")
    assert report.bad_dates == (("a004", "onbekend"),)
    assert "a004 ('onbekend')" in report.summary() and report.to_dict()["bad_dates"] == [{"doc_id": "a004", "date": "onbekend"}]


@pytest.mark.parametrize("since, until", [("2022-03-01", "2022-03-31"), ("2022-06-15", None), (None, "2022-02-10"),
                                          ("2022-10-10", "2022-10-12"), ("2022-05-01", "2022-08-31")])
def test_date_filters_keep_every_citation_in_range_and_still_return_k(dated_qa, since, until):
    lo = date.fromisoformat(since).toordinal() if since else 0
    hi = date.fromisoformat(until).toordinal() if until else 10**9
    days = dated_qa.news.days
    allowed = [r for r in range(len(dated_qa.chunks))
               if days[dated_qa.news.row_doc[r], 0] and days[dated_qa.news.row_doc[r], 1] >= lo
               and days[dated_qa.news.row_doc[r], 0] <= hi]
    for k in (3, 10):
        for mode in ("hybrid", "dense", "bm25"):
            hits = dated_qa.search("de haven van Rotterdam", k=k, mode=mode, since=since, until=until)
            assert {h.row for h in hits} <= set(allowed)
            if mode != "bm25":  # BM25 returns only rows sharing a term
                assert len(hits) == min(k, len(allowed))


def test_hnsw_filter_through_the_graph_selector(dated_qa, monkeypatch):
    monkeypatch.setattr(dense, "EXACT_FILTERED_MAX", 0)  # force the ID-selector path
    rows = dated_qa.news.rows(make_filters("2022-04-01", "2022-09-30"))
    hits = dated_qa.dense.search(np.asarray(dated_qa.vectors[0]), 10, rows)
    assert len(hits) == 10 and all(rows[r] for r, _ in hits)
    exact = np.flatnonzero(rows)[np.argsort(-(np.asarray(dated_qa.vectors)[rows] @ dated_qa.vectors[0]))[:10]]
    if dated_qa.dense.kind == "flat":
        assert [r for r, _ in hits] == exact.tolist()
    else:
        assert len({r for r, _ in hits} & set(exact.tolist())) >= 9


def test_publisher_filter_and_citation_fields(dated_qa):
    answer = dated_qa.ask("maatregelen van de gemeente", k=5, publishers=["noorderbode"])
    assert len(answer.citations) == 5
    for c in answer.citations:
        d = c.to_dict()
        assert d["publisher"] == "Noorderbode" == d["source"] and d["path"].endswith("news.jsonl")
        assert d["url"].startswith("https://krant.example/")
    assert answer.to_dict()["filters"] == {"since": None, "until": None, "publishers": ["noorderbode"],
                                           "from_question": None}
    alias = dated_qa.docs["a006"]
    assert alias.publisher == PUBLISHERS[0]  # "source" in the JSONL is the publisher's older name


def test_time_in_the_question_becomes_a_filter_relative_to_the_newest_article(dated_qa):
    answer = dated_qa.ask("Wat gebeurde er in oktober 2022 met de energieprijzen?", k=5)
    f = answer.filters
    assert (f.since, f.until, f.from_question) == (date(2022, 10, 1), date(2022, 10, 31), "in oktober 2022")
    assert all(c.date.startswith("2022-10") for c in answer.citations)
    assert dated_qa.reference_date == date(2022, 12, 24)
    last_month = dated_qa.ask("Wat gebeurde er vorige maand met de energieprijzen?", k=3).filters
    assert (last_month.since, last_month.until) == (date(2022, 11, 1), date(2022, 11, 30))
    moved = dated_qa.ask("Wat gebeurde er vorige maand?", k=3, now="2022-04-15").filters
    assert (moved.since, moved.until) == (date(2022, 3, 1), date(2022, 3, 31))
    off = dated_qa.ask("Wat gebeurde er in oktober 2022 met de energieprijzen?", k=5, read_time=False)
    assert not off.filters and len({c.date[:7] for c in off.citations}) > 1
    plain = dated_qa.ask("Wat gebeurde er met de energieprijzen?", k=5)
    assert plain.filters == Filters() and plain.to_dict()["filters"]["from_question"] is None


def test_explicit_dates_win_over_the_question(dated_qa):
    answer = dated_qa.ask("Wat gebeurde er in oktober 2022?", k=3, since="2022-02-01", until="2022-02-28")
    assert answer.filters.from_question is None and all(c.date.startswith("2022-02") for c in answer.citations)


def test_a_follow_up_lends_the_earlier_words_not_the_earlier_dates(dated_qa):
    answer = dated_qa.ask("En wat zeiden ze daar?", k=3, history=["Wat gebeurde er in maart 2022 in de haven?"])
    assert answer.context and not answer.filters
    own = dated_qa.ask("En in april 2022?", k=3, history=["Wat gebeurde er in maart 2022 in de haven?"])
    assert own.filters.since == date(2022, 4, 1) and all(c.date.startswith("2022-04") for c in own.citations)


def test_recency_weighs_newer_articles_up(dated_qa):
    plain = dated_qa.search("de haven van Rotterdam", k=10, recency=False)
    latest = dated_qa.search("de haven van Rotterdam", k=10, recency=True)
    day = lambda hits: [int(dated_qa.news.days[dated_qa.news.row_doc[h.row], 1]) for h in hits]  # noqa: E731
    assert np.mean(day(latest)[:3]) > np.mean(day(plain)[:3])
    assert dated_qa.ask("Wat is het laatste nieuws over de haven van Rotterdam?", k=3).recency
    assert not dated_qa.ask("Wat gebeurde er in de haven van Rotterdam?", k=3).recency


@pytest.mark.parametrize("value, day", [("2022-10-07", date(2022, 10, 7)), ("2022-10", date(2022, 10, 1)),
                                        ("2022", date(2022, 1, 1)), (date(2021, 5, 6), date(2021, 5, 6)), (None, None)])
def test_as_day(value, day):
    assert as_day(value) == day


@pytest.mark.parametrize("value", ["07-10-2022", "gisteren", "2022-13-01", "2022-02-30"])
def test_as_day_refuses_what_is_not_a_date(value):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):  # the message says what a date looks like
        as_day(value)


def test_until_of_a_month_is_its_last_day_and_ranges_must_be_ordered():
    assert make_filters(until="2022-02").until == date(2022, 2, 28)
    with pytest.raises(ValueError, match="after"):
        make_filters("2022-05-01", "2022-04-01")


def test_an_index_without_news_tables_asks_for_a_sync(dated, tmp_path):
    folder, _ = dated
    QA.build([folder / "corpus"], tmp_path / "index", model="hash-64")
    qa = QA.load(tmp_path / "index")
    generation = qa.folder
    manifest = json.loads((generation / "manifest.json").read_text())
    for name in FILES:
        manifest["files"].pop(name)
        (generation / name).unlink()
    manifest[store.MANIFEST_CHECKSUM] = store.manifest_checksum(manifest)
    (generation / "manifest.json").write_text(json.dumps(manifest))
    old = QA.load(tmp_path / "index")
    assert old.news is None and old.search("de haven", k=3)  # still served without filters
    with pytest.raises(IndexFormatError, match="qa sync"):
        old.search("de haven", k=3, since="2022-01-01")
    report = QA.sync([folder / "corpus"], tmp_path / "index")
    assert report.written and report.chunks["embedded"] == 0  # the tables computed, nothing embedded
    synced = QA.load(tmp_path / "index")
    assert synced.news is not None and synced.search("de haven", k=3, since="2022-01-01")


# ---------------------------------------------------------------- the dated test corpus (data/news_nl)

NEWS_NL = Path(__file__).resolve().parent.parent / "data" / "news_nl"


def read_jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (NEWS_NL / name).read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module", params=["flat", "hnsw"])
def news_nl(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp(f"news_nl_{request.param}")
    return QA.build([NEWS_NL / "articles.jsonl"], folder / "index", model="hash-64", dense=request.param)


def doc_row(qa: QA) -> dict[str, int]:
    return {qa.docs.records[i].doc_id: i for i in range(len(qa.docs))}


def test_the_index_keeps_the_wire_clusters_of_the_corpus(news_nl):
    row = doc_row(news_nl)
    cluster = news_nl.news.cluster
    pairs = read_jsonl("pairs.jsonl")
    wire_pairs = [p for p in pairs if p["kind"] == "wire"]
    same_event = [p for p in pairs if p["kind"] == "same_event"]
    assert len(wire_pairs) >= 100 and len(same_event) >= 20
    assert all(cluster[row[p["a"]]] == cluster[row[p["b"]]] for p in wire_pairs)
    assert not any(cluster[row[p["a"]]] == cluster[row[p["b"]]] for p in same_event)
    # the representative is the earliest copy
    days = news_nl.news.days
    for i in range(len(cluster)):
        assert days[cluster[i], 0] <= days[i, 0] or days[i, 0] == 0


def test_dated_questions_cite_only_their_range_and_k_distinct_stories(news_nl):
    questions = [q for q in read_jsonl("questions.jsonl") if q.get("since")]
    assert len(questions) >= 30
    news, k = news_nl.news, 5
    for q in questions:
        since, until = date.fromisoformat(q["since"]), date.fromisoformat(q["until"])
        rows = news.rows(Filters(since, until))
        # What k can be: the allowed rows, one version (the earliest allowed copy) per wire story.
        docs = np.unique(news.row_doc[rows])
        earliest = {}
        for d in sorted(docs.tolist(), key=lambda d: (news.days[d, 0], d)):
            earliest.setdefault(int(news.cluster[d]), d)
        possible = sum(int(np.count_nonzero(news.row_doc == d)) for d in earliest.values())
        answer = news_nl.ask(q["question"], k=k, since=since, until=until)
        # (a passage whose highlight an earlier one already shows is left out: at least one per story)
        assert min(k, len(earliest)) <= len(answer.citations) <= min(k, possible), q["id"]
        for c in answer.citations:
            d = doc_row(news_nl)[c.doc_id]
            assert news.days[d, 1] >= since.toordinal() and news.days[d, 0] <= until.toordinal(), (q["id"], c.date)


def test_wire_copies_collapse_into_one_citation_that_names_the_others(news_nl):
    row, cluster = doc_row(news_nl), news_nl.news.cluster
    collapsed = 0
    questions = [q["question"] for q in read_jsonl("questions.jsonl")]
    # Follow-ups too: the previous answer's article leads them, and its wire copies must not follow.
    asked = [(q, []) for q in questions] + [("En wat gebeurde er daarna?", [q]) for q in questions]
    for question, history in asked:
        answer = news_nl.ask(question, k=5, read_time=False, history=history)
        assert bool(answer.context) is bool(history)
        clusters = [int(cluster[row[c.doc_id]]) for c in answer.citations]
        for c, cl in zip(answer.citations, clusters):
            # one version per story: other citations of the same cluster are passages of the same copy
            assert {x.doc_id for x, y in zip(answer.citations, clusters) if y == cl} == {c.doc_id}
            members = {news_nl.docs.records[int(i)].doc_id for i in np.flatnonzero(cluster == cl)} - {c.doc_id}
            assert {d["doc_id"] for d in c.duplicates} == members
            collapsed += bool(c.duplicates)
    assert collapsed >= 10


def test_question_time_words_of_the_corpus_questions(news_nl):
    for q in read_jsonl("questions.jsonl"):
        if "expect_since" in q:
            f = news_nl.ask(q["question"], k=3).filters
            assert (f.since and f.since.isoformat(), f.until and f.until.isoformat()) == \
                (q["expect_since"], q["expect_until"]), q["question"]


def test_time_words_about_the_event_fall_back_to_the_whole_archive(news_nl, monkeypatch):
    # "vorig jaar" is 2021 for the archive, but the article (2022) tells of defections "last year":
    # nothing dated 2021 answers, so the whole archive is searched, and the answer says so. (Any
    # cited sentence counts as answering here: the hash embedder's cosines mean nothing.)
    monkeypatch.setattr(answer_module, "NO_ANSWER_THRESHOLD_BY_LANGUAGE", {"nl": -1.0, "en": -1.0})
    question = "Hoeveel Noord-Koreanen liepen vorig jaar over naar Zuid-Korea?"
    answer = news_nl.ask(question, k=5)
    assert answer.time_dropped == "vorig jaar" and not answer.filters.dated and answer.citations
    assert answer.to_dict()["time_dropped"] == "vorig jaar"
    assert news_nl.ask(question, k=5, read_time=False).time_dropped is None
    dated = news_nl.ask("Hoeveel Noord-Koreanen liepen in april 2022 over naar Zuid-Korea?", k=5)
    assert dated.time_dropped is None and dated.filters.dated  # something in April answers: the filter stays
