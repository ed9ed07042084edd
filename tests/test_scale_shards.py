"""Date-range shards answer as one index (no Ray: shards searched in this process).

The fast hashing embedder gives every text the same vector in every index, so shards and one
index over the same articles must agree exactly: BM25 scores (the collection's statistics),
fused scores, filters, recency, wire copies collapsed across shard boundaries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import Future
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

from qa import QA, SearchSettings
from qa.corpus import Article
from qa.embedding import load_embedder
from qa.errors import IndexFormatError, QAError
from qa.news import make_filters
from qa.scale.router import LocalShard, ShardedQA, answer_request, local_router
from qa.scale.searcher import ShardSearcher
from qa.scale.shards import Layout, date_ranges, sync_shards

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT / "data" / "news_nl"


def questions(n_titles: int = 80) -> list[tuple[str, dict]]:
    """The corpus's questions (with their date ranges too), article titles, and titles asked with
    recency and publisher filters: well over 100 questions."""
    asked = [json.loads(line) for line in (NEWS / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    articles = [json.loads(line) for line in (NEWS / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    cases = [(q["question"], {}) for q in asked] + [(a["title"], {}) for a in articles[:n_titles]]
    cases += [(q["question"], {"since": q["since"], "until": q["until"]}) for q in asked if q.get("since")]
    cases += [(a["title"], {"recency": True}) for a in articles[n_titles:n_titles + 15]]
    cases += [(a["title"], {"publishers": [a["publisher"]]}) for a in articles[n_titles + 15:n_titles + 30]
              if a.get("publisher")]
    return cases


def comparable(answer: dict) -> dict:
    """An answer without each leg's rank: exactly equal scores (identical wire-copy paragraphs)
    are ordered by row inside a leg, and rows are numbered differently in shards and in one index."""
    return {**answer, "citations": [{k: v for k, v in c.items() if k != "ranks"} for c in answer["citations"]]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One index and 3 date-range shards of data/news_nl, with the hashing embedder."""
    out = tmp_path_factory.mktemp("scale")
    corpus = out / "corpus"
    corpus.mkdir()
    shutil.copy(NEWS / "articles.jsonl", corpus / "articles.jsonl")
    embedder = load_embedder("hash-64")
    single = QA.build([corpus], out / "single", embedder=embedder)
    report = sync_shards([corpus], out / "shards", shards=3, embedder=embedder)
    return out, corpus, embedder, single, report


def test_date_ranges_cut_between_days_and_send_undated_articles_to_the_first_shard():
    def article(i: int, day: str | None) -> Article:
        return Article(f"a{i}", "x " * 50, "t", day, "s")

    articles = [article(0, None)] + [article(i, f"2022-0{1 + i % 9}-1{i % 3}") for i in range(1, 40)]
    shards = date_ranges(articles, 3)
    assert [s.name for s in shards] == ["shard-00", "shard-01", "shard-02"]
    assert shards[0].since is None and shards[-1].until is None  # open to the past and to the future
    assert shards[0].holds(0) and not shards[1].holds(0)        # undated: the first shard
    for a, b in zip(shards, shards[1:]):
        assert a.until.toordinal() + 1 == b.since.toordinal()
    for a in articles[1:]:  # every day in exactly one shard
        day = date.fromisoformat(a.date).toordinal()
        assert sum(s.holds(day) for s in shards) == 1
    assert shards[-1].holds(date(2030, 1, 1).toordinal())      # new days go to the newest shard
    with pytest.raises(QAError, match="distinct days"):
        date_ranges(articles[:3], 4)


def test_each_shard_is_a_normal_index(built):
    out, _, embedder, single, report = built
    layout = Layout.load(out / "shards")
    assert len(layout.shards) == 3 and sum(s.chunks for s in layout.shards) == len(single.chunks)
    assert sum(s.documents for s in layout.shards) == len(single.docs)
    for i in range(3):
        qa = QA.load(layout.folder(i), embedder=embedder)  # served alone, with its own statistics
        assert qa.ask("Wie won de Ryder Cup?").citations is not None


def test_shard_bm25_scores_equal_one_index(built):
    out, _, _, single, _ = built
    row_of = {single.chunks[i].chunk_id: i for i in range(len(single.chunks))}
    for i in range(3):
        shard = ShardSearcher(out / "shards", i)
        rows = np.array([row_of[shard.qa.chunks[r].chunk_id] for r in range(len(shard.qa.chunks))])
        for question, _ in questions()[:60]:
            terms = single.analyzer.analyze(question, "nl")
            np.testing.assert_allclose(shard.qa.bm25.scores(terms), single.bm25.scores(terms)[rows], rtol=0, atol=1e-9)


def tie_at_cut(qa: QA, question: str, options: dict, k: int) -> bool:
    """Whether a leg of one index has exactly equal scores on both sides of its depth cut: then
    one index and the shards may keep different (equally scored) chunks there, identical
    paragraphs of wire copies, and the fused scores of those chunks differ."""
    settings = SearchSettings(k=k)
    query = qa.prepare(question, settings, filters=make_filters(options.get("since"), options.get("until"),
                                                                options.get("publishers")), recency=options.get("recency"))
    depth = max(settings.depth, k)
    legs = qa.legs(query, settings.but(depth=depth + 1))
    return any(len(found) > depth and found[depth - 1][1] == found[depth][1] for found in legs.values())


def test_sharded_answers_equal_one_index(built):
    out, _, embedder, single, _ = built
    router = local_router(out / "shards", embedder)
    cases = questions()
    equal = 0
    for question, options in cases:
        answer, (sharded, status) = single.ask(question, **options), router.ask_with_status(question, **options)
        assert status is None
        hits, found = single.search(question, k=10, **options), router.search(question, k=10, **options)
        # Rows: shards number theirs as one index over the corpus does.
        same = ([(h.row, h.leg_scores, h.also) for h in found] == [(h.row, h.leg_scores, h.also) for h in hits]
                and [h.score for h in found] == pytest.approx([h.score for h in hits], rel=0, abs=1e-6))
        if same and comparable(sharded.to_dict()) == comparable(answer.to_dict()):
            equal += 1
        else:
            assert tie_at_cut(single, question, options, 10), (question, options)
    assert equal >= 100 and equal >= 0.9 * len(cases)


def test_follow_ups_over_the_shards_equal_one_index(built):
    out, _, embedder, single, _ = built
    router = local_router(out / "shards", embedder)
    firsts = [q for q, options in questions()[:25] if not options]
    equal = 0
    for first in firsts:
        for follow in ("En wanneer gebeurde dat?", "Wie zei dat daar?"):
            answer, sharded = single.ask(follow, history=[first]), router.ask(follow, history=[first])
            assert answer.context == sharded.context == (first,)
            equal += comparable(sharded.to_dict()) == comparable(answer.to_dict())
    assert equal >= 0.9 * 2 * len(firsts)  # (equally scored chunks at a leg's depth cut may differ)


def test_wire_copies_across_a_shard_boundary_collapse_as_in_one_index(built):
    out, _, _, _, _ = built
    layout = Layout.load(out / "shards")
    across = {rep for doc, (rep, shard, _) in layout.wire.items() if layout.wire[rep][1] != shard}
    assert layout.wire and across, "the test corpus should have wire copies on both sides of a shard boundary"


def test_near_duplicates_from_one_source_stay_apart_in_the_shards_as_in_one_index(tmp_path):
    # One file without publishers: passages of an evaluation set, an article and its update. One
    # index keeps them apart (news.py); the shards' global clusters must too (they did not).
    text = " ".join(f"Zin {i} over de begroting van het ministerie en de kosten van het plan." for i in range(30))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    records = [{"doc_id": f"d{i}", "title": f"Stuk {i}", "date": f"2022-0{i + 1}-01",
                "text": text + f" Slot {i} met een eigen einde."} for i in range(4)]
    (corpus / "one.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    embedder = load_embedder("hash-64")
    single = QA.build([corpus], tmp_path / "single", embedder=embedder)
    sync_shards([corpus], tmp_path / "shards", shards=2, embedder=embedder)
    assert single.news.summary(str)["wire_clusters"] == 0 and Layout.load(tmp_path / "shards").wire == {}
    answer = local_router(tmp_path / "shards", embedder).ask("Wat kost het plan van het ministerie?")
    alone = single.ask("Wat kost het plan van het ministerie?")
    assert [(c.doc_id, c.duplicates) for c in answer.citations] == [(c.doc_id, c.duplicates) for c in alone.citations]
    assert len({c.doc_id for c in answer.citations}) == 4  # four articles cited, none folded into another


def test_the_app_and_the_client_say_clearly_when_no_server_answers(tmp_path, capsys):
    import app
    from qa.scale.client import RemoteQA

    with pytest.raises(QAError, match="cannot reach the server"):
        RemoteQA(f"http://127.0.0.1:{free_port()}/", timeout=5)
    assert app.main(["--backend", f"http://127.0.0.1:{free_port()}/"]) == 1
    assert "is `qa serve` running?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        app.main(["--backend", "http://127.0.0.1:1/", "--allow-upload", "--corpus", str(tmp_path)])
    assert "need a local index" in capsys.readouterr().err


class _Broken:
    """A shard that is down (raises) or hangs (never answers)."""

    def __init__(self, name: str, hang: bool):
        self.name, self.hang = name, hang

    def call(self, method: str, *args):
        if self.hang:
            return Future()  # never completes: the router's deadline must end the wait
        raise ConnectionError("shard is down")


@pytest.mark.parametrize("hang", [False, True])
def test_a_shard_that_is_down_or_hangs_gives_a_partial_answer_that_names_it(built, hang):
    out, _, embedder, single, _ = built
    layout = Layout.load(out / "shards")
    searchers = [LocalShard(ShardSearcher(out / "shards", i)) for i in range(3)]
    router = ShardedQA(searchers, embedder, layout, timeout=0.5)
    router.clients[1] = _Broken("shard-01", hang)
    answer, status = router.ask_with_status("Waarover stemden de Macedoniërs in september 2022?")
    assert status["shards_failed"] == ["shard-01"]
    assert status["unsearched"][0]["since"] == layout.shards[1].since.isoformat()
    assert ("0.5 s" if hang else "shard is down") in status["reason"]
    missing = {d.doc_id for d in QA.load(layout.folder(1), embedder=embedder).docs.records.all()}
    assert answer.citations and not {c.doc_id for c in answer.citations} & missing  # nothing of it is cited
    router.clients[1] = searchers[1]  # back up: whole answers again
    assert router.ask_with_status("Waarover stemden de Macedoniërs in september 2022?")[1] is None


def test_a_sync_goes_to_the_shard_of_each_date_and_keeps_the_statistics_exact(built, tmp_path):
    out, corpus, embedder, _, _ = built
    root, extra = tmp_path / "shards", tmp_path / "corpus"
    shutil.copytree(corpus, extra)
    sync_shards([extra], root, shards=3, embedder=embedder)
    (extra / "new.jsonl").write_text(json.dumps({"doc_id": "nieuw-1", "title": "Nieuw", "date": "2023-02-01",
                                                 "text": "De Ryder Cup wordt in 2023 in Rome gespeeld. " * 5}) + "\n",
                                     encoding="utf-8")
    before = Layout.load(root)
    report = sync_shards([extra], root, embedder=embedder)
    written = [r.written for _, r in report.shards]
    assert written == [False, False, True]  # only the newest shard took the new day
    assert report.shards[2][1].chunks["embedded"] >= 1 and report.shards[2][1].chunks["reused"] > 0
    after = Layout.load(root)
    assert after.bm25["n_docs"] > before.bm25["n_docs"]
    single = QA.build([extra], tmp_path / "single", embedder=embedder)
    router = local_router(root, embedder)
    for question in ("Waar wordt de Ryder Cup gespeeld?", "Wie won de Ryder Cup?", "tsunami Sulawesi"):
        assert comparable(router.ask(question).to_dict()) == comparable(single.ask(question).to_dict())


def test_a_shard_synced_alone_is_refused_until_the_shards_are_synced_together(built, tmp_path):
    out, corpus, embedder, _, _ = built
    root = tmp_path / "shards"
    shutil.copytree(out / "shards", root)
    QA.remove([QA.load(root / "shard-00", embedder=embedder).docs.records[0].doc_id], root / "shard-00")
    with pytest.raises(IndexFormatError, match="sync the shards together"):
        ShardSearcher(root, 0)
    sync_shards([corpus], root, embedder=embedder)  # the article comes back; statistics computed again
    ShardSearcher(root, 0)


def test_cli_asks_a_shard_root_in_process(built, capsys):
    from qa.cli import format_answer, main

    out, _, embedder, single, _ = built
    assert main(["ask", "--index", str(out / "shards"), "Wie won de Ryder Cup?"]) == 0
    assert capsys.readouterr().out.strip() == format_answer(single.ask("Wie won de Ryder Cup?")).strip()


def test_server_answers_print_as_local_ones(built):
    from qa.cli import format_answer
    from qa.scale.client import answer_from_dict, partial_note

    out, _, embedder, single, _ = built
    router = local_router(out / "shards", embedder)
    for question, options in questions()[:20]:
        data = json.loads(json.dumps(answer_request(router, {"question": question, **options})))
        assert data["partial"] is None and partial_note(data["partial"], "nl") is None
        assert format_answer(answer_from_dict(data)) == format_answer(single.ask(question, **options))


def test_nothing_imports_ray_without_ray_options():
    code = ("import sys, qa.cli, qa.api, qa.scale.shards, qa.scale.router, qa.scale.searcher, qa.scale.client, "
            "qa.scale.commands; sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0
