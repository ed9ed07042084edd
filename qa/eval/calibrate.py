"""`calibrate`: the no-answer threshold on the best citation's support (Highlight.support), and the seed checks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..answer import best_support
from ..fusion import SearchSettings
from .datasets import load_dataset, load_passages
from .metrics import ASK_K
from .workspace import Workspace, progress_bar, shared_workspace

# Hand-written checks for the no-answer rule against the seed corpus (a Dutch article on the war
# in Ukraine): the corpus answers the first two and not the third.
SEED_CHECKS = (
    ("Hoeveel vierkante kilometer is in minder dan een week bevrijd?", True),
    ("How many square kilometres were liberated in less than a week?", True),
    ("Who won the 2018 World Cup?", False),
)
QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


def calibrate(answerable: Sequence[str | Path], unanswerable: Sequence[str | Path], *,
              seeds: str | Path | None = "seeds", limit: int | None = None, embedder=None,
              model: str | None = None, index_dir: str | Path | None = None, progress: bool = False,
              workspace: Workspace | None = None) -> dict:
    """Choose a no-answer threshold on the best citation's support, and measure the shipping rule.

    Answerable: the questions of the `answerable` sets asked against an index of their own
    passages. Unanswerable: the same questions asked against an index of the `unanswerable` sets'
    passages, which do not hold the answers. The threshold maximises balanced accuracy (mean of
    the rates of answerable questions found and unanswerable ones refused); among equally good
    thresholds, the middle of the best range.

    Returns:
        {"threshold", "answerable_found", "unanswerable_refused", "balanced_accuracy" (one
        threshold for all questions), "current" (the rule that ships: `answer_found` of qa.ask,
        each question at its own language's threshold in NO_ANSWER_THRESHOLD_BY_LANGUAGE),
        "by_language" (at the chosen, the shipping and the language's own best threshold),
        "answerable"/"unanswerable" (quantiles, by language), "seed_checks", "seconds"}.
    """
    from ..answer import NO_ANSWER_THRESHOLD_BY_LANGUAGE as SHIPPING

    with shared_workspace(workspace, embedder=embedder, model=model, index_dir=index_dir, progress=progress) as ws:
        started = time.perf_counter()
        sets = [load_dataset(d, limit=limit) for d in answerable]
        negatives = [load_passages(d) for d in unanswerable]
        questions = [q for ds in sets for q in ds.questions]
        ws.embedder.embed_questions([q.text for q in questions], progress=ws.progress)
        settings = SearchSettings()
        qa_pos, _ = ws.index([ds.passages for ds in sets])
        qa_neg, _ = ws.index([ds.passages for ds in negatives])
        scores, found = {}, {}
        for label, qa in (("answerable", qa_pos), ("unanswerable", qa_neg)):
            answers = [qa.ask(q.text, k=ASK_K, settings=settings) for q in progress_bar(questions, f"ask ({label})", ws.progress)]
            scores[label] = np.array([best_support(a.citations) for a in answers])
            found[label] = np.array([a.answer_found for a in answers], dtype=bool)
        threshold = choose_threshold(scores["answerable"], scores["unanswerable"])
        langs = np.array([q.lang for q in questions])
        result = {
            "answerable_sets": [ds.name for ds in sets], "unanswerable_sets": [ds.name for ds in negatives],
            "questions": len(questions),
            "threshold": threshold,
            **_separation(scores["answerable"], scores["unanswerable"], threshold),
            "current": {"thresholds": dict(SHIPPING), **_rates(found["answerable"], ~found["unanswerable"])},
            "by_language": {},
        }
        for lang in sorted(set(langs)):
            pos, neg = scores["answerable"][langs == lang], scores["unanswerable"][langs == lang]
            own_best = choose_threshold(pos, neg)
            if lang in SHIPPING:
                current = {"threshold": SHIPPING[lang], **_separation(pos, neg, SHIPPING[lang])}
            else:  # a set's own language label ask does not know: what ask decided for those questions
                current = {"threshold": None, **_rates(found["answerable"][langs == lang], ~found["unanswerable"][langs == lang])}
            result["by_language"][lang] = {**_separation(pos, neg, threshold), "current": current,
                                           "own_best": {"threshold": own_best, **_separation(pos, neg, own_best)}}
        for label in ("answerable", "unanswerable"):
            result[label] = {"all": _quantiles(scores[label]),
                             **{lang: _quantiles(scores[label][langs == lang]) for lang in sorted(set(langs))}}
        result["seed_checks"] = _seed_checks(ws, Path(seeds)) if seeds and Path(seeds).exists() else []
        result["seconds"] = round(time.perf_counter() - started, 2)
        return result


def choose_threshold(positive: np.ndarray, negative: np.ndarray, *, step: float = 0.001) -> float:
    """The cut (positive if score >= cut), on a grid of `step`, with the best balanced accuracy.

    Among equally good cuts, the middle of the widest run of them, so the choice does not hinge
    on one question.
    """
    positive, negative = np.sort(np.asarray(positive, float)), np.sort(np.asarray(negative, float))
    if not len(positive) or not len(negative):
        raise ValueError("calibration needs both answerable and unanswerable scores")
    lo = np.floor(min(positive[0], negative[0]) / step)
    hi = np.ceil(max(positive[-1], negative[-1]) / step) + 1
    cuts = np.arange(lo, hi + 1) * step
    tpr = 1 - np.searchsorted(positive, cuts - 1e-12, side="left") / len(positive)
    tnr = np.searchsorted(negative, cuts - 1e-12, side="left") / len(negative)
    balanced = (tpr + tnr) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    widest = max(runs, key=len)
    decimals = max(0, -int(np.floor(np.log10(step))))
    return round(float(cuts[(widest[0] + widest[-1]) // 2]), decimals)


def _separation(positive: np.ndarray, negative: np.ndarray, threshold: float) -> dict:
    """The rates of one threshold: answerable found (score >= threshold), unanswerable refused."""
    return _rates(positive >= threshold, negative < threshold)


def _rates(found: np.ndarray, refused: np.ndarray) -> dict:
    """{"answerable_found", "unanswerable_refused", "balanced_accuracy"} from per-question outcomes."""
    tpr = float(np.mean(found)) if len(found) else None
    tnr = float(np.mean(refused)) if len(refused) else None
    out = {"answerable_found": _round(tpr), "unanswerable_refused": _round(tnr)}
    out["balanced_accuracy"] = _round((tpr + tnr) / 2) if tpr is not None and tnr is not None else None
    return out


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {"n": 0}
    return {"n": len(values), "mean": round(float(np.mean(values)), 4),
            **{f"q{int(q * 100):02d}": round(float(np.quantile(values, q)), 4) for q in QUANTILES}}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _seed_checks(ws: Workspace, seeds: Path) -> list[dict]:
    """The SEED_CHECKS as `ask` answers them with the shipping settings and no-answer rule."""
    from ..corpus import iter_corpus_files

    qa, _ = ws.index(iter_corpus_files([seeds]))
    checks = []
    for question, expected in SEED_CHECKS:
        answer = qa.ask(question, k=ASK_K)
        checks.append({"question": question, "expected": expected, "score": round(best_support(answer.citations), 4),
                       "found": answer.answer_found, "ok": answer.answer_found == expected})
    return checks
