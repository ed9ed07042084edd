"""Passage-level retrieval metrics, the hybrid-versus-legs checks, and answer statistics.

Chunk hits map to their passage (the JSONL id, a chunk's doc_id) at the rank of its best chunk,
so a hit on any chunk of a gold passage counts for that passage.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from ..answer import best_support
from ..fusion import SearchSettings
from .datasets import Question
from .workspace import progress_bar

MODES = ("bm25", "dense", "hybrid")
METRIC_KS = (1, 5, 10)
ASK_K = 5                 # citations per answer, as the chat shows them
CHUNKS_PER_PASSAGE = 3    # chunk hits fetched per passage rank wanted (a passage may be 2-3 chunks)
ACCEPT_MARGIN = 0.005     # hybrid may trail the better single leg by this much
CROSS_LINGUAL_MARGIN = 0.05


def rank_passages(qa, question: str, *, mode: str, settings: SearchSettings | None = None,
                  n: int = max(METRIC_KS)) -> list[str]:
    """The first n distinct passages (chunk doc_ids) of a search, each at its best chunk's rank.

    Args:
        settings: the search settings under test (default `SearchSettings()`); `mode` and the
            number of hits fetched override its own.
    """
    settings = settings or SearchSettings()
    k = CHUNKS_PER_PASSAGE * n
    if mode == "hybrid":
        k = min(k, settings.depth)  # search() widens depth to k, which would change the setting under test
    hits = qa.search(question, settings, k=k, mode=mode)
    passage_ids = _passage_ids(qa)
    ranked: list[str] = []
    for hit in hits:
        doc_id = passage_ids[hit.row]
        if doc_id not in ranked:
            ranked.append(doc_id)
            if len(ranked) == n:
                break
    return ranked


_PASSAGE_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _passage_ids(qa) -> list[str]:
    """Row -> doc_id of a loaded index, read once: chunk records are parsed on demand, and
    evaluation looks up every hit of every question under every setting."""
    if qa not in _PASSAGE_IDS:
        _PASSAGE_IDS[qa] = [c.doc_id for c in qa.chunks]
    return _PASSAGE_IDS[qa]


def metric_names(ks: Sequence[int] = METRIC_KS) -> list[str]:
    """Report names of the metrics for these cutoffs: R@k for each k, MRR and nDCG at the largest."""
    top = max(ks)
    return [f"R@{k}" for k in ks] + [f"MRR@{top}", f"nDCG@{top}"]


def per_question_metrics(rankings: dict[str, list[str]], gold: dict[str, Sequence[str]],
                         ks: Sequence[int] = METRIC_KS) -> dict[str, dict[str, float]]:
    """Recall@k, MRR and nDCG per question with ir_measures (trec_eval semantics).

    Args:
        rankings: question id -> passage ids, best first.
        gold: question id -> relevant passage ids (binary relevance).

    Returns:
        question id -> metric name -> value; a question with no results scores 0.
    """
    import ir_measures
    from ir_measures import RR, R, nDCG

    top = max(ks)
    measures = {f"R@{k}": R @ k for k in ks} | {f"MRR@{top}": RR @ top, f"nDCG@{top}": nDCG @ top}
    names = {str(m): name for name, m in measures.items()}
    qrels = [ir_measures.Qrel(q, d, 1) for q, docs in gold.items() for d in docs]
    # Scores only order the run: the first passage gets the highest, no ties.
    run = [ir_measures.ScoredDoc(q, d, float(top - i)) for q, docs in rankings.items() for i, d in enumerate(docs[:top])]
    # trec_eval leaves out questions without results; they count as 0 here.
    values = {q: dict.fromkeys(measures, 0.0) for q in gold}
    if run:
        for m in ir_measures.iter_calc(list(measures.values()), qrels, run):
            values[m.query_id][names[str(m.measure)]] = float(m.value)
    return values


def group_means(values: dict[str, dict[str, float]], questions: Sequence[Question], names: list[str]) -> dict:
    """Mean of each metric over all questions ("all") and per question language, with "n"."""
    groups: dict[str, list[str]] = {"all": [q.id for q in questions]}
    for q in questions:
        groups.setdefault(q.lang, []).append(q.id)
    return {g: {"n": len(ids), **{m: round(float(np.mean([values[i][m] for i in ids])), 4) for m in names}}
            for g, ids in groups.items()}


def search_metrics(qa, questions: Sequence[Question], mode: str, settings: SearchSettings, ks: Sequence[int],
                   progress: bool, desc: str) -> dict:
    """Search every question in one mode and return the group means of the metrics."""
    rankings = {q.id: rank_passages(qa, q.text, mode=mode, settings=settings, n=max(ks))
                for q in progress_bar(questions, desc, progress)}
    values = per_question_metrics(rankings, {q.id: q.gold for q in questions}, ks)
    return group_means(values, questions, metric_names(ks))


def hybrid_checks(metrics: dict, ks: Sequence[int] = METRIC_KS) -> dict:
    """Per language: hybrid minus the better single leg in R@5 and MRR@10 (ok: > -ACCEPT_MARGIN),
    and for English questions the gap to Dutch ones in hybrid R@5."""
    checks: dict = {}
    names = [f"R@{5 if 5 in ks else max(ks)}", f"MRR@{max(ks)}"]
    if all(m in metrics for m in MODES):
        for lang in metrics["hybrid"]:
            margins = {n: round(metrics["hybrid"][lang][n] - max(metrics["bm25"][lang][n], metrics["dense"][lang][n]), 4)
                       for n in names}
            checks[lang] = {"margins": margins, "ok": all(v >= -ACCEPT_MARGIN for v in margins.values())}
    hybrid = metrics.get("hybrid", {})
    if "nl" in hybrid and "en" in hybrid:
        gap = round(hybrid["nl"][names[0]] - hybrid["en"][names[0]], 4)
        checks["en_vs_nl"] = {f"{names[0]}_gap": gap, "ok": gap <= CROSS_LINGUAL_MARGIN}
    return checks


def answer_stats(qa, questions: Sequence[Question], settings: SearchSettings, progress: bool,
                 desc: str) -> tuple[dict, list[float]]:
    """answer_found rate and answer-sentence accuracy per language, via qa.ask (hybrid).

    Returns:
        (stats by "all" and language, each question's best_support in question order).
    """
    rows = []
    for q in progress_bar(questions, desc, progress):
        answer = qa.ask(q.text, k=ASK_K, settings=settings)
        cited = next((c for c in answer.citations if c.doc_id in q.gold), None)
        hit = bool(q.answer and cited and q.answer.casefold() in cited.highlight.text.casefold())
        rows.append((q, answer.answer_found, cited is not None, hit, best_support(answer.citations)))
    groups: dict[str, list] = {"all": rows}
    for row in rows:
        groups.setdefault(row[0].lang, []).append(row)
    stats = {}
    for g, rs in groups.items():
        with_answer = [r for r in rs if r[0].answer]
        cited = [r for r in with_answer if r[2]]
        stats[g] = {
            "n": len(rs),
            "answer_found": round(sum(r[1] for r in rs) / len(rs), 4),
            "gold_cited": round(sum(r[2] for r in rs) / len(rs), 4),
            "answer_questions": len(with_answer),
            "answer_sentence_accuracy": _ratio(sum(r[3] for r in with_answer), len(with_answer)),
            "answer_sentence_accuracy_when_cited": _ratio(sum(r[3] for r in cited), len(cited)),
        }
    return stats, [r[4] for r in rows]


def rounded_mean(values: list) -> float:
    """The mean to 4 decimals (0.0 for no values)."""
    return round(float(np.mean(values)), 4) if values else 0.0


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None
