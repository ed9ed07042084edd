"""Evaluation on question sets: retrieval metrics per mode and language, answers, fusion sweep, no-answer calibration.

Tooling around the runtime core, which never imports it (only `qa eval` does, lazily). A dataset
is a folder with `passages.jsonl` (id, text, optional title and lang: the corpus) and
`questions.jsonl` (id, question, lang, answer_passage_ids, optional answer). Its passages are
indexed with the normal pipeline (`QA.open_or_build`), optionally together with other sets'
passages as distractors, and every question is searched in each mode with the settings under
test passed per call (a `SearchSettings`; the QA is never changed). Metrics are passage-level:
chunk hits map to their passage (the JSONL id) at the rank of its best chunk. See EVALUATION.md.

    from qa.eval import evaluate
    report = evaluate("data/xquad_nl", distractors=["data/ntrex_nl"], limit=200)
    report["metrics"]["hybrid"]["en"]["R@5"]

Modules: datasets (reading sets), workspace (shared embedder and indexes), metrics, evaluate,
sweep, calibrate, followups (conversations: follow-up questions with and without the earlier
turns), report (Markdown, plot, files) and cli (`qa eval`).
"""

from __future__ import annotations

from .calibrate import QUANTILES, SEED_CHECKS, calibrate, choose_threshold
from .datasets import Dataset, DatasetError, Question, load_dataset, load_passages
from .evaluate import evaluate
from .followups import evaluate_followups, load_conversations
from .metrics import (
    ACCEPT_MARGIN,
    ASK_K,
    METRIC_KS,
    MODES,
    answer_stats,
    hybrid_checks,
    metric_names,
    per_question_metrics,
    rank_passages,
)
from .report import plot, to_markdown, write_outputs
from .sweep import SWEEP_DEPTHS, SWEEP_METRICS, SWEEP_RRF_K, SWEEP_WEIGHTS, sweep, sweep_grid
from .workspace import CachingEmbedder, Workspace

__all__ = [
    "ACCEPT_MARGIN", "ASK_K", "METRIC_KS", "MODES", "QUANTILES", "SEED_CHECKS", "SWEEP_DEPTHS", "SWEEP_METRICS",
    "SWEEP_RRF_K", "SWEEP_WEIGHTS", "CachingEmbedder", "Dataset", "DatasetError", "Question", "Workspace",
    "answer_stats", "calibrate", "choose_threshold", "evaluate", "evaluate_followups", "load_conversations", "hybrid_checks", "load_dataset", "load_passages",
    "metric_names", "per_question_metrics", "plot", "rank_passages", "sweep", "sweep_grid", "to_markdown",
    "write_outputs",
]
