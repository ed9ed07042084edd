"""Evaluation: dataset reading, metric oracles, report structure, CLI, sweep, calibration; one real-model run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.cli import main
from qa.eval import (
    MODES,
    SEED_CHECKS,
    CachingEmbedder,
    DatasetError,
    calibrate,
    choose_threshold,
    evaluate,
    load_dataset,
    per_question_metrics,
    rank_passages,
    sweep,
    sweep_grid,
)
from qa.fusion import SearchSettings

ROOT = Path(__file__).resolve().parent.parent
XQUAD = ROOT / "data" / "xquad_nl"

# A long passage (> 120 words) so one passage becomes several chunks.
LONG = " ".join(f"Zin nummer {i} over de haven van Rotterdam en de containeroverslag in dat jaar." for i in range(30))
PASSAGES = [
    {"id": "p-oorlog", "text": "Het Oekraïense leger heeft in minder dan een week 400 vierkante kilometer bevrijd. "
                               "Dat meldden de strijdkrachten donderdag.", "lang": "nl", "title": "Oorlog"},
    {"id": "p-inflatie", "text": "De inflatie in Nederland daalde in december naar 9,6 procent. Dat meldt het CBS.", "lang": "nl"},
    {"id": "p-wk", "text": "Argentinië won het WK voetbal in Qatar na strafschoppen tegen Frankrijk. "
                           "Lionel Messi werd uitgeroepen tot beste speler.", "lang": "nl"},
    {"id": "p-weer", "text": "Het KNMI waarschuwt voor gladheid in het noorden. De temperatuur daalt tot min 5 graden.", "lang": "nl"},
    {"id": "p-bbb", "text": "De BBB werd de grootste partij met 15 zetels in de Eerste Kamer.", "lang": "nl"},
    {"id": "p-haven", "text": LONG + " De haven sloeg uiteindelijk 14 miljoen containers over.", "lang": "nl"},
]
QUESTIONS = [
    {"id": "q1-nl", "question": "Hoeveel vierkante kilometer werd bevrijd?", "lang": "nl",
     "answer_passage_ids": ["p-oorlog"], "answer": "400 vierkante kilometer"},
    {"id": "q1-en", "question": "How many square kilometres were liberated?", "lang": "en",
     "answer_passage_ids": ["p-oorlog"], "answer": "400 square kilometres", "answer_nl": "400 vierkante kilometer"},
    {"id": "q2-nl", "question": "Hoe hoog was de inflatie in december?", "lang": "nl",
     "answer_passage_ids": ["p-inflatie"], "answer": "9,6 PROCENT"},
    {"id": "q3-nl", "question": "Wie won het WK voetbal in Qatar?", "lang": "nl",
     "answer_passage_ids": ["p-wk"], "answer": "Brazilië"},  # not in the passage: no answer string
    {"id": "q4-en", "question": "How many containers did the port of Rotterdam handle?", "lang": "en",
     "answer_passage_ids": ["p-haven"]},
    {"id": "q5-nl", "question": "Hoeveel zetels kreeg de BBB in de Eerste Kamer?", "lang": "nl",
     "answer_passage_ids": ["p-bbb", "p-weer"], "answer": "15 zetels"},
]
OTHER = [{"id": f"o-{i}", "text": f"Een ander bericht nummer {i} over het verkeer op de A{i} bij Utrecht.", "lang": "nl"}
         for i in range(8)]


def write_dataset(folder: Path, passages: list[dict], questions: list[dict]) -> Path:
    folder.mkdir(parents=True)
    for name, rows in (("passages.jsonl", passages), ("questions.jsonl", questions)):
        with open(folder / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return folder


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_dataset(tmp_path / "tiny", PASSAGES, QUESTIONS)


@pytest.fixture
def other(tmp_path) -> Path:
    questions = [{"id": "oq", "question": "Verkeer bij Utrecht?", "lang": "nl", "answer_passage_ids": ["o-1"]}]
    return write_dataset(tmp_path / "other", OTHER, questions)


# ------------------------------------------------------------------ datasets


def test_load_dataset_reads_gold_languages_and_answer_strings(tiny):
    ds = load_dataset(tiny)
    by_id = {q.id: q for q in ds.questions}
    assert ds.name == "tiny" and len(ds.questions) == ds.total_questions == len(QUESTIONS)
    assert by_id["q1-en"].lang == "en" and by_id["q1-en"].gold == ("p-oorlog",)
    assert by_id["q1-en"].answer == "400 vierkante kilometer"  # the passage-language answer (answer_nl)
    assert by_id["q2-nl"].answer == "9,6 PROCENT"               # found case-insensitively
    assert by_id["q3-nl"].answer is None                         # not in the gold passage
    assert by_id["q4-en"].answer is None                         # no answer given
    assert by_id["q5-nl"].gold == ("p-bbb", "p-weer")


def test_limit_draws_a_fixed_sample_in_file_order(tiny):
    a, b = load_dataset(tiny, limit=3), load_dataset(tiny, limit=3)
    assert [q.id for q in a.questions] == [q.id for q in b.questions]
    order = [q["id"] for q in QUESTIONS]
    assert len(a.questions) == 3 and [order.index(q.id) for q in a.questions] == sorted(order.index(q.id) for q in a.questions)
    assert a.total_questions == len(QUESTIONS)
    with pytest.raises(ValueError, match="limit"):
        load_dataset(tiny, limit=0)


@pytest.mark.parametrize("breakage, message", [
    ("no-questions", "questions.jsonl is missing"),
    ("bad-json", "not valid JSON"),
    ("unknown-gold", "not in passages.jsonl"),
    ("no-id", "expected a JSON object"),
])
def test_bad_datasets_fail_with_a_clear_error(tmp_path, breakage, message):
    folder = write_dataset(tmp_path / "bad", PASSAGES, QUESTIONS)
    questions = folder / "questions.jsonl"
    if breakage == "no-questions":
        questions.unlink()
    elif breakage == "bad-json":
        questions.write_text('{"id": "x", "question": \n', encoding="utf-8")
    elif breakage == "unknown-gold":
        questions.write_text(json.dumps({"id": "x", "question": "?", "answer_passage_ids": ["nope"]}) + "\n", encoding="utf-8")
    else:
        questions.write_text(json.dumps({"question": "?", "answer_passage_ids": ["p-wk"]}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_dataset(folder)


# ------------------------------------------------------------------ metrics (oracle: hand-computed values)


def test_metrics_match_hand_computed_values():
    rankings = {"a": ["x", "g", "y"], "b": ["g1", "z", "g2"], "c": [], "d": ["p", "q", "r", "s", "t", "u"]}
    gold = {"a": ["g"], "b": ["g1", "g2"], "c": ["g"], "d": ["u"]}
    v = per_question_metrics(rankings, gold, ks=(1, 5, 10))
    assert v["a"]["R@1"] == 0 and v["a"]["R@5"] == 1 and v["a"]["MRR@10"] == pytest.approx(0.5)
    assert v["a"]["nDCG@10"] == pytest.approx(1 / np.log2(3))
    assert v["b"]["R@1"] == pytest.approx(0.5) and v["b"]["R@5"] == 1 and v["b"]["MRR@10"] == 1
    assert v["b"]["nDCG@10"] == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    assert v["c"] == {"R@1": 0, "R@5": 0, "R@10": 0, "MRR@10": 0, "nDCG@10": 0}  # no results counts as 0
    assert v["d"]["R@5"] == 0 and v["d"]["R@10"] == 1 and v["d"]["MRR@10"] == pytest.approx(1 / 6)


def test_metrics_follow_the_cutoffs():
    v = per_question_metrics({"a": ["x", "g"]}, {"a": ["g"]}, ks=(2, 3))
    assert set(v["a"]) == {"R@2", "R@3", "MRR@3", "nDCG@3"} and v["a"]["R@2"] == 1


def test_rank_passages_maps_chunks_to_distinct_passages(tiny, tmp_path):
    from qa import QA

    qa = QA.build([tiny / "passages.jsonl"], tmp_path / "index", model="hash-64")
    assert sum(c.doc_id == "p-haven" for c in qa.chunks) > 1  # the long passage is several chunks
    for mode in MODES:
        ranked = rank_passages(qa, "haven Rotterdam containers", mode=mode, settings=SearchSettings(), n=10)
        assert len(ranked) == len(set(ranked)) and set(ranked) <= {p["id"] for p in PASSAGES}
        # Oracle: the search's own hits, each passage at its best chunk, in order.
        hits = qa.search("haven Rotterdam containers", SearchSettings(), k=30 if mode != "hybrid" else 20, mode=mode)
        assert ranked == list(dict.fromkeys(qa.chunks[h.row].doc_id for h in hits))[:10]
    assert rank_passages(qa, "haven Rotterdam containers", mode="bm25", settings=SearchSettings(), n=1) == ["p-haven"]


def test_caching_embedder_embeds_each_text_once():
    from qa.embedding import Embedder, HashEmbedder

    inner = HashEmbedder(16)
    emb = CachingEmbedder(inner)
    assert isinstance(emb, Embedder) and emb.identity == inner.identity and emb.dim == 16
    a = emb.encode_queries(["een", "twee", "een"])
    b = emb.encode_queries(["twee"])
    assert emb.embedded["query"] == 2 and np.allclose(a[1], b[0]) and np.allclose(a[0], a[2])
    assert np.allclose(a, inner.encode_queries(["een", "twee", "een"]))
    c = emb.embed_questions(["drie", "twee"], progress=False)  # the batched path shares the cache
    assert emb.embedded["query"] == 3 and np.allclose(c[1], b[0])
    emb.encode_passages(["een"])
    assert emb.embedded["passage"] == 1 and emb.encode_passages([]).shape == (0, 16)


# ------------------------------------------------------------------ reports (hashing fake embedder)


def check_report_structure(report: dict, langs: set[str], modes=MODES, answers: bool = True) -> None:
    assert set(report["metrics"]) == set(modes)
    for per in report["metrics"].values():
        assert set(per) == {"all"} | langs
        for m in per.values():
            assert set(m) == {"n", "R@1", "R@5", "R@10", "MRR@10", "nDCG@10"}
            assert all(0.0 <= m[k] <= 1.0 for k in m if k != "n")
            # Recall can only grow with the cutoff; a gold passage at rank 1 makes RR 1.
            assert m["R@1"] <= m["R@5"] <= m["R@10"] and m["R@1"] <= m["MRR@10"]
        assert per["all"]["n"] == sum(per[lang]["n"] for lang in langs)
    timed = {"index", "questions", *modes, "total"} | ({"answers"} if answers and "hybrid" in modes else set())
    assert set(report["seconds"]) == timed
    assert set(report["corpus"]) == {"passages", "chunks", "index", "index_cached", "passages_embedded"}


def test_evaluate_report_structure(tiny):
    report = evaluate(tiny, model="hash-64")
    check_report_structure(report, {"nl", "en"})
    assert report["dataset"] == "tiny" and report["questions"] == len(QUESTIONS) and report["distractors"] == []
    assert report["corpus"]["passages"] == len(PASSAGES) and report["corpus"]["chunks"] > len(PASSAGES)
    assert report["fusion"] == SearchSettings().fusion_settings()
    assert SearchSettings(**report["fusion"]) == SearchSettings()  # the report names every fusion setting
    answers = report["answers"]
    assert set(answers) == {"all", "nl", "en"}
    assert answers["all"]["answer_questions"] == 4  # all but q3 (answer not in its passage) and q4 (none)
    for a in answers.values():
        assert 0 <= a["answer_found"] <= 1 and 0 <= a["gold_cited"] <= 1
    assert set(report["checks"]) == {"all", "nl", "en", "en_vs_nl"}
    assert set(report["checks"]["nl"]["margins"]) == {"R@5", "MRR@10"}
    json.dumps(report)  # JSON-ready


def test_bm25_finds_exact_dutch_questions(tiny):
    # Every Dutch question shares its key words with (one of) its gold passage(s) and no other.
    report = evaluate(tiny, model="hash-64", modes=["bm25"], answers=False)
    assert report["metrics"]["bm25"]["nl"]["MRR@10"] == 1.0
    assert report["metrics"]["bm25"]["nl"]["R@5"] == pytest.approx((3 + 0.5) / 4)  # q5 has two gold passages
    assert report["answers"] is None and set(report["metrics"]) == {"bm25"} and report["checks"] == {}


def test_distractors_join_the_index_but_not_the_gold(tiny, other):
    plain = evaluate(tiny, model="hash-64", answers=False)
    mixed = evaluate(tiny, model="hash-64", answers=False, distractors=[other, tiny])  # itself is ignored
    assert mixed["distractors"] == ["other"]
    assert mixed["corpus"]["passages"] == len(PASSAGES) + len(OTHER)
    assert mixed["questions"] == plain["questions"]
    for mode in MODES:
        assert mixed["metrics"][mode]["all"]["R@10"] <= plain["metrics"][mode]["all"]["R@10"] + 1e-9


def test_indexes_are_reused_from_the_cache_folder(tiny, tmp_path):
    first = evaluate(tiny, model="hash-64", answers=False, index_dir=tmp_path / "cache")
    second = evaluate(tiny, model="hash-64", answers=False, index_dir=tmp_path / "cache")
    check_report_structure(second, {"nl", "en"}, answers=False)
    assert not first["corpus"]["index_cached"] and second["corpus"]["index_cached"]
    assert first["corpus"]["passages_embedded"] == first["corpus"]["chunks"]  # a fresh build embeds every chunk
    assert second["corpus"]["passages_embedded"] == 0 and second["corpus"]["index"] == first["corpus"]["index"]
    assert second["metrics"] == first["metrics"]
    # A changed corpus file makes the cached index stale.
    with open(tiny / "passages.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "p-nieuw", "text": "Een nieuw bericht over de trein.", "lang": "nl"}) + "\n")
    third = evaluate(tiny, model="hash-64", answers=False, index_dir=tmp_path / "cache")
    assert not third["corpus"]["index_cached"] and third["corpus"]["passages"] == len(PASSAGES) + 1
    # The changed corpus is synced: only the new passage is embedded, the others keep their vectors.
    assert third["corpus"]["passages_embedded"] == 1


def test_settings_are_passed_per_call_not_written_onto_the_index(tiny):
    from qa.eval import Workspace

    settings = SearchSettings(fusion="rrf", rrf_k=60, depth=50, weights={"bm25": 1.0, "dense": 0.5})
    with Workspace(model="hash-64") as ws:
        shipped = evaluate(tiny, workspace=ws)
        tuned = evaluate(tiny, settings=settings, workspace=ws)
        again = evaluate(tiny, workspace=ws)  # the same QA, opened once per run
    assert tuned["fusion"] == settings.fusion_settings()
    assert again["fusion"] == shipped["fusion"] == SearchSettings().fusion_settings()
    assert again["corpus"]["index_cached"] and again["metrics"] == shipped["metrics"] and again["answers"] == shipped["answers"]


@pytest.mark.parametrize("kwargs, message", [({"modes": ["fuzzy"]}, "modes"), ({"ks": [0, 5]}, "ks")])
def test_bad_arguments_name_the_parameter(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate(tiny, model="hash-64", **kwargs)


def test_sweep_tries_every_setting_ranks_them_and_leaves_each_set_out(tiny, other):
    grid = [SearchSettings(fusion="rrf", rrf_k=k, depth=20, weights={"bm25": wb, "dense": wd})
            for k in (10, 60) for wb, wd in ((1.0, 1.0), (0.5, 1.0))] + [SearchSettings(bm25_share=0.5)]
    result = sweep([tiny, other], model="hash-64", grid=grid)
    assert len(result["rows"]) == len(grid) + 1  # the default always takes part
    assert {r["label"] for r in result["rows"]} == {f.label() for f in [*grid, SearchSettings()]}
    assert result["default"]["fusion"] == SearchSettings().fusion_settings()
    assert result["groups"] == ["tiny/nl", "tiny/en", "other/nl"]
    assert set(result["legs"]) == {"bm25", "dense"}
    scores = [(not r["ok"], -r["score"]) for r in result["rows"]]
    assert scores == sorted(scores) and result["best"] == result["rows"][0]
    for r in result["rows"]:
        assert r["ok"] == (r["worst_margin"] >= -0.005)
    # Leave one set out: the pick without a set is the best row on the other set's groups alone.
    loo = result["leave_one_out"]
    assert set(loo) == {"tiny", "other"}
    assert set(loo["other"]["held_out"]) == {"other/nl"} and set(loo["tiny"]["held_out"]) == {"tiny/nl", "tiny/en"}
    for name, train in (("other", ["tiny/nl", "tiny/en"]), ("tiny", ["other/nl"])):
        def score(row, train=train):
            margins = [row["groups"][g][m] - max(result["legs"]["bm25"][g][m], result["legs"]["dense"][g][m])
                       for g in train for m in ("R@5", "MRR@10")]
            means = [np.mean([row["groups"][g][m] for g in train]) for m in ("MRR@10", "R@5")]
            return (min(margins) < -0.005, -round(float(np.mean(means)), 4))
        best = min(result["rows"], key=score)
        assert score(best) == score(next(r for r in result["rows"] if r["fusion"] == loo[name]["tuned"]))


def test_default_sweep_grid_has_both_fusions_and_the_defaults():
    grid = sweep_grid()
    assert {s.fusion for s in grid} == {"dbsf", "rrf"} and SearchSettings() in grid and len(set(grid)) == len(grid)


def test_choose_threshold():
    # Separable: the middle of the gap.
    assert choose_threshold(np.array([0.9, 0.95, 0.92]), np.array([0.7, 0.75, 0.8])) == pytest.approx(0.85, abs=0.001)
    # Overlapping: losing one answerable question (0.8) to refuse every unanswerable one is best.
    t = choose_threshold(np.array([0.8, 0.85, 0.9, 0.95]), np.array([0.7, 0.75, 0.82, 0.83]))
    assert 0.83 < t <= 0.85 and t == round(t, 3)
    # Oracle: no other cut on the same 0.001 grid does better.
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(0.86, 0.03, 500), rng.normal(0.80, 0.03, 500)

    def balanced(c):
        return (np.mean(pos >= c) + np.mean(neg < c)) / 2

    t = choose_threshold(pos, neg)
    assert balanced(t) >= max(balanced(c) for c in np.round(np.arange(700, 950) / 1000, 3)) - 1e-9
    with pytest.raises(ValueError):
        choose_threshold(np.array([]), np.array([0.5]))


def test_calibrate_structure(tiny, other, tmp_path):
    from qa import QA
    from qa.answer import NO_ANSWER_THRESHOLD_BY_LANGUAGE

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("date 2022-10 In minder dan een week is 400 vierkante kilometer bevrijd.", encoding="utf-8")
    result = calibrate([tiny], [other], seeds=seeds, model="hash-64")
    assert result["questions"] == len(QUESTIONS)
    assert set(result["answerable"]) == set(result["unanswerable"]) == {"all", "nl", "en"}
    assert result["answerable"]["all"]["n"] == len(QUESTIONS)
    assert 0 <= result["balanced_accuracy"] <= 1
    # "current" is the rule that ships: every question at its own language's threshold. Its rates
    # are the per-language rates at those thresholds, pooled (the tiny set's labels are what
    # detect_language says).
    current = result["current"]
    assert current["thresholds"] == NO_ANSWER_THRESHOLD_BY_LANGUAGE
    n = {lang: result["answerable"][lang]["n"] for lang in ("nl", "en")}
    for lang, s in result["by_language"].items():
        assert s["current"]["threshold"] == NO_ANSWER_THRESHOLD_BY_LANGUAGE[lang]
        assert set(s) == {"answerable_found", "unanswerable_refused", "balanced_accuracy", "current", "own_best"}
        # The language's own best threshold is the best single one: no worse than the chosen or the shipping one.
        assert s["own_best"]["balanced_accuracy"] >= max(s["balanced_accuracy"], s["current"]["balanced_accuracy"]) - 1e-4
    for rate in ("answerable_found", "unanswerable_refused"):
        pooled = sum(n[lang] * result["by_language"][lang]["current"][rate] for lang in n) / sum(n.values())
        assert current[rate] == pytest.approx(pooled, abs=1e-3)
    assert current["balanced_accuracy"] == pytest.approx((current["answerable_found"] + current["unanswerable_refused"]) / 2,
                                                         abs=1e-4)
    # Seed checks report what ask answers (oracle: the same corpus asked directly).
    qa = QA.build([seeds], tmp_path / "seed-index", model="hash-64")
    assert [(c["question"], c["expected"]) for c in result["seed_checks"]] == list(SEED_CHECKS)
    for check in result["seed_checks"]:
        assert check["found"] is qa.ask(check["question"], k=5).answer_found
        assert check["ok"] == (check["found"] == check["expected"]) and isinstance(check["score"], float)


# ------------------------------------------------------------------ command line


def test_the_core_does_not_import_the_evaluation_tooling():
    """Only `qa eval` (qa/cli.py, inside a function) reaches into qa.eval."""
    import ast

    for path in sorted((ROOT / "qa").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")] + [f"{'.' * node.level}{a.name}" for a in node.names
                                                                      if not node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n in (".eval", "qa.eval") or n.startswith((".eval.", "qa.eval.")) for n in names):
                assert path.name == "cli.py" and id(node) not in top_level, f"{path.name} imports {names} at line {node.lineno}"


def test_cli_eval_json_and_outputs(tiny, other, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", str(tiny), "--model", "hash-64", "--distractors", str(other), "--k", "1", "5", "10",
                 "--json", "--out", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    check_report_structure(result["reports"][0], {"nl", "en"})
    assert result["reports"][0]["distractors"] == ["other"]
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == result
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| nl | hybrid |" in md and "answer_found" in md
    assert (out / "modes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((out / "index").iterdir())


def test_cli_eval_text_single_mode(tiny, capsys):
    assert main(["eval", str(tiny), "--model", "hash-64", "--mode", "bm25", "--no-answers"]) == 0
    text = capsys.readouterr().out
    assert "| en | bm25 |" in text and "hybrid" not in text.split("|---")[1]


def test_cli_sweep_and_calibrate_print_their_tables(tiny, other, tmp_path, capsys):
    passages_only = tmp_path / "passages_only"
    passages_only.mkdir()
    (passages_only / "passages.jsonl").write_text((other / "passages.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "out"
    code = main(["eval", str(tiny), "--model", "hash-64", "--sweep", "--calibrate", str(passages_only),
                 "--seeds", str(tmp_path / "no-seeds"), "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "## Fusion sweep" in text and "## No-answer calibration" in text and "## tiny" not in text
    assert text.count("(best)") == 1
    result = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(result) == {"sweep", "calibration"} and result["calibration"]["seed_checks"] == []
    assert len(result["sweep"]["rows"]) == len(sweep_grid())
    assert not (out / "modes.png").exists()  # nothing to compare per mode


@pytest.mark.parametrize("args, message", [
    (["eval", "no/such/folder"], "no such dataset folder"),
    (["eval", "{tiny}", "--k", "0"], "--k"),
    (["eval", "{tiny}", "--limit", "0"], "--limit"),
])
def test_cli_eval_errors(tiny, capsys, args, message):
    assert main([a.format(tiny=tiny) for a in args] + ["--model", "hash-64"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


# ------------------------------------------------------------------ the real model


# Measured on this subset (50 questions: 29 Dutch, 21 English; 25 passages, 35 chunks):
#   real model, hybrid   R@5 1.0 / R@10 1.0 (both languages), MRR@10 nl 0.98, en 0.83,
#                        answer-sentence accuracy 0.84
#   BM25 alone           R@10 nl 1.0, en 0.71; MRR@10 en 0.68
#   hash-64 fake, hybrid R@5 en 0.48, R@10 en 0.81; MRR@10 en 0.32; answer-sentence accuracy 0.32
# The floors leave room for numeric noise but not for a broken or missing dense leg.
REAL_FLOOR = {"R@10": 0.95, "R@5": 0.9, "MRR@10": 0.75}


@pytest.mark.model
def test_real_model_on_an_xquad_subset(tmp_path, real_embedder):
    """50 xquad_nl questions (Dutch and English) over the 25 passages they come from; ~10 s."""
    passages = [json.loads(line) for line in (XQUAD / "passages.jsonl").read_text(encoding="utf-8").splitlines()][:25]
    ids = {p["id"] for p in passages}
    questions = [q for q in map(json.loads, (XQUAD / "questions.jsonl").read_text(encoding="utf-8").splitlines())
                 if q["answer_passage_ids"][0] in ids]
    subset = write_dataset(tmp_path / "xquad_subset", passages, questions)
    report = evaluate(subset, limit=50, embedder=real_embedder)
    check_report_structure(report, {"nl", "en"})
    hybrid = report["metrics"]["hybrid"]
    for lang in ("nl", "en"):
        for metric, floor in REAL_FLOOR.items():
            assert hybrid[lang][metric] >= floor, (lang, metric, hybrid)
        # Hybrid stays close to the better leg (the full sets hold it to 0.01; 50 questions are noisier).
        best_leg = max(report["metrics"]["bm25"][lang]["MRR@10"], report["metrics"]["dense"][lang]["MRR@10"])
        assert hybrid[lang]["MRR@10"] >= best_leg - 0.05, report["metrics"]
    assert report["checks"]["en_vs_nl"]["ok"], report["checks"]
    assert report["answers"]["all"]["answer_questions"] > 0
    assert report["answers"]["all"]["answer_sentence_accuracy"] >= 0.7, report["answers"]


def _write_conversations(folder: Path, conversations: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "passages.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PASSAGES), encoding="utf-8")
    (folder / "conversations.jsonl").write_text("".join(json.dumps(c) + "\n" for c in conversations), encoding="utf-8")
    return folder


CONVERSATIONS = [
    {"id": "c1", "lang": "nl", "kind": "followup", "turns": [
        {"question": "Wat meldt het CBS over de inflatie?", "answer": "9,6 procent", "gold": ["p-inflatie"]},
        {"question": "En in welke maand daalde die?", "answer": "december", "gold": ["p-inflatie"]}]},
    {"id": "c2", "lang": "nl", "kind": "standalone", "turns": [
        {"question": "Wat meldt het CBS over de inflatie?", "answer": "9,6 procent", "gold": ["p-inflatie"]},
        {"question": "Wie werd uitgeroepen tot beste speler van het WK voetbal in Qatar?", "answer": "Messi", "gold": ["p-wk"]}]},
]


def test_followups_are_asked_with_and_without_the_earlier_turns(tmp_path):
    from qa.eval import evaluate_followups

    result = evaluate_followups(_write_conversations(tmp_path / "conv", CONVERSATIONS), model="hash-64")
    assert result["conversations"] == 2 and result["kinds"] == {"followup": 1, "standalone": 1}
    follow, alone = result["results"]["followup"]["all"], result["results"]["standalone"]["all"]
    assert follow["n"] == alone["n"] == 1 and result["first_turns"]["all"]["n"] == 2
    assert follow["context_used"] == 1.0 and alone["context_used"] == 0.0  # the new topic stands alone
    assert alone["with_context"] == alone["alone"]  # and is answered exactly as if asked alone
    assert all(0 <= m[key] <= 1 for per in result["results"].values() for m in per.values()
               for key in ("with_context", "alone", "found_with_context", "found_alone"))


@pytest.mark.parametrize("damage, message", [
    ({"kind": "chat"}, "kind"), ({"turns": [{"question": "x", "answer": "y", "gold": ["p-wk"]}]}, "two or more turns"),
    ({"turns": [{"question": "x", "answer": "y", "gold": ["nope"]}] * 2}, "not in passages.jsonl"),
])
def test_bad_conversations_are_refused_with_the_line(tmp_path, damage, message):
    from qa.eval import load_conversations

    folder = _write_conversations(tmp_path / "conv", [{**CONVERSATIONS[0], **damage}])
    with pytest.raises(DatasetError, match=f"conversations.jsonl:1: .*{message}"):
        load_conversations(folder)


def test_cli_eval_runs_conversation_sets_next_to_question_sets(tiny, tmp_path, capsys):
    folder = _write_conversations(tmp_path / "conv", CONVERSATIONS)
    assert main(["eval", str(tiny), str(folder), "--model", "hash-64", "--json", "--no-answers"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["dataset"] for r in result["reports"]] == ["tiny"] and [f["dataset"] for f in result["followups"]] == ["conv"]
    assert main(["eval", str(folder), "--model", "hash-64"]) == 0
    assert "## conv (conversations)" in capsys.readouterr().out
