"""`evaluate_news`: questions over a dated, multi-publisher archive with wire copies (data/news_nl).

A news set is a folder with `articles.jsonl` (the corpus, as `qa build` reads it) and
`questions.jsonl`: {"id", "question", "lang", "answer_doc_ids", and optionally "since"/"until"
(the period the answer lies in) and "expect_since"/"expect_until" (the filter the question's own
time words should produce)}. Each question is asked three ways: without any date filter (time
words ignored), with its period given as since/until, and as typed (time words read). A question
counts as found at k when one of the first k citations is an answering article or names one as
a wire copy ("also in").
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .datasets import DatasetError
from .metrics import rounded_mean
from .workspace import Workspace, progress_bar, shared_workspace

ARTICLES_FILE, QUESTIONS_FILE = "articles.jsonl", "questions.jsonl"
K = 5


def is_news_set(folder: str | Path) -> bool:
    """Whether a dataset folder is a news archive (articles.jsonl rather than passages.jsonl)."""
    return (Path(folder) / ARTICLES_FILE).is_file()


def evaluate_news(folder: str | Path, *, workspace: Workspace | None = None, progress: bool = False) -> dict:
    """Ask every question without filters, with its period, and as typed; report R@1, R@5, how
    many citations fall outside the period, and whether the time words gave the expected filter.

    Returns:
        {"dataset", "questions", "results": {way: {language or "all": {"n", "R@1", "R@5",
        "outside_period", "with_copies"}}}, "time_words": {"n", "correct", "wrong": [...]}, "seconds"}.
    """
    folder = Path(folder)
    path = folder / QUESTIONS_FILE
    if not path.is_file():
        raise DatasetError(f"{path} is missing; a news set holds {ARTICLES_FILE} and {QUESTIONS_FILE}")
    questions = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with shared_workspace(workspace, progress=progress) as ws:
        started = time.perf_counter()
        qa, _ = ws.index([folder / ARTICLES_FILE])
        rows: dict[str, list] = {"no filter": [], "period given": [], "as typed": []}
        wrong = []
        for q in progress_bar(questions, f"{folder.name} questions", ws.progress):
            gold, period = set(q["answer_doc_ids"]), (q.get("since"), q.get("until"))
            rows["no filter"].append((q["lang"], *_judge(qa.ask(q["question"], k=K, read_time=False), gold, period)))
            if q.get("since"):
                rows["period given"].append((q["lang"], *_judge(qa.ask(q["question"], k=K, since=period[0],
                                                                      until=period[1]), gold, period)))
            typed = qa.ask(q["question"], k=K)
            rows["as typed"].append((q["lang"], *_judge(typed, gold, period)))
            if "expect_since" in q:
                got = typed.filters.to_dict()
                if (got["since"], got["until"]) != (q["expect_since"], q["expect_until"]):
                    wrong.append({"question": q["question"], "got": got, "expected": [q["expect_since"], q["expect_until"]]})
        expected = sum("expect_since" in q for q in questions)
        return {"dataset": folder.name, "questions": len(questions),
                "results": {way: _summary(rs) for way, rs in rows.items()},
                "time_words": {"n": expected, "correct": expected - len(wrong), "wrong": wrong},
                "seconds": round(time.perf_counter() - started, 2)}


def _judge(answer, gold: set[str], period: tuple[str | None, str | None]) -> tuple:
    found = [c.doc_id in gold or any(d["doc_id"] in gold for d in c.duplicates) for c in answer.citations]
    since, until = period
    outside = [bool(since and c.date and c.date[:10] < since[:len(c.date[:10])]
                    or until and c.date and c.date[:10] > until[:len(c.date[:10])]) for c in answer.citations]
    return any(found[:1]), any(found[:K]), float(np.mean(outside)) if outside else 0.0, \
        float(np.mean([bool(c.duplicates) for c in answer.citations])) if answer.citations else 0.0


def _summary(rows: list) -> dict:
    groups: dict[str, list] = {"all": rows}
    for row in rows:
        groups.setdefault(row[0], []).append(row)
    return {g: {"n": len(rs), "R@1": rounded_mean([r[1] for r in rs]), f"R@{K}": rounded_mean([r[2] for r in rs]),
                "outside_period": rounded_mean([r[3] for r in rs]), "with_copies": rounded_mean([r[4] for r in rs])}
            for g, rs in groups.items()}
