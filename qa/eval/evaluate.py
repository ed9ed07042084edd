"""`evaluate`: one dataset's retrieval metrics per mode and language, and its answer statistics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ..fusion import SearchSettings
from .datasets import corpus_files, load_dataset, load_passages
from .metrics import METRIC_KS, MODES, answer_stats, hybrid_checks, search_metrics
from .workspace import Workspace, shared_workspace


def evaluate(dataset_dir: str | Path, *, modes: Sequence[str] = MODES, distractors: Sequence[str | Path] = (),
             ks: Sequence[int] = METRIC_KS, limit: int | None = None, answers: bool = True,
             settings: SearchSettings | None = None, embedder=None, model: str | None = None,
             index_dir: str | Path | None = None, progress: bool = False,
             workspace: Workspace | None = None) -> dict:
    """Index a dataset's passages (plus distractors), run every question, and report the metrics.

    Args:
        dataset_dir: the dataset folder.
        modes: search modes to evaluate ("bm25", "dense", "hybrid").
        distractors: other dataset folders whose passages join the index (gold stays this set's).
        ks: recall cutoffs; MRR and nDCG are taken at the largest.
        limit: evaluate a fixed random sample of this many questions.
        answers: also run qa.ask (hybrid) for answer_found and answer-sentence accuracy.
        settings: the search settings under test (default `SearchSettings()`, what ships); each
            search and ask gets them, the QA itself is not changed.
        embedder, model, index_dir, progress: see `Workspace` (ignored when `workspace` is given).
        workspace: share the embedder and indexes with other evaluations.

    Returns:
        A JSON-ready report: metrics[mode][language or "all"] -> {"n", "R@1", ..., "MRR@10",
        "nDCG@10"}, answers[language] (or None), checks (hybrid against the legs), fusion
        (`settings.fusion_settings()`), seconds.

    Raises:
        DatasetError: a dataset folder is incomplete.
        ValueError: an unknown mode or a bad cutoff.
    """
    modes = _check_modes(modes)
    ks = _check_ks(ks)
    settings = settings or SearchSettings()
    with shared_workspace(workspace, embedder=embedder, model=model, index_dir=index_dir, progress=progress) as ws:
        started = time.perf_counter()
        dataset = load_dataset(dataset_dir, limit=limit)
        others = [load_passages(d) for d in distractors]
        others = [d for d in others if d.passages.resolve() != dataset.passages.resolve()]
        qa, index_info = ws.index(corpus_files(dataset, others))
        seconds = {"index": index_info["seconds"]}
        t = time.perf_counter()
        ws.embedder.embed_questions([q.text for q in dataset.questions], progress=ws.progress)
        seconds["questions"] = round(time.perf_counter() - t, 2)
        metrics = {}
        for mode in modes:
            t = time.perf_counter()
            metrics[mode] = search_metrics(qa, dataset.questions, mode, settings, ks, ws.progress, f"{dataset.name} {mode}")
            seconds[mode] = round(time.perf_counter() - t, 2)
        stats = None
        if answers and "hybrid" in modes:
            t = time.perf_counter()
            stats, _ = answer_stats(qa, dataset.questions, settings, ws.progress, f"{dataset.name} ask")
            seconds["answers"] = round(time.perf_counter() - t, 2)
        seconds["total"] = round(time.perf_counter() - started, 2)
        return {
            "dataset": dataset.name,
            "path": str(dataset.folder),
            "distractors": [d.name for d in others],
            "questions": len(dataset.questions),
            "questions_in_set": dataset.total_questions,
            "corpus": {"passages": len(qa.docs), "chunks": len(qa.chunks), "index": index_info["folder"],
                       "index_cached": index_info["cached"], "passages_embedded": index_info["embedded"]},
            "model": qa.manifest["model"]["name"],
            "fusion": settings.fusion_settings(),
            "metrics": metrics,
            "answers": stats,
            "checks": hybrid_checks(metrics, ks),
            "seconds": seconds,
        }


def _check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(modes))
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"modes must be some of {', '.join(MODES)}, got {list(modes)!r}")
    return modes


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(sorted(set(ks)))
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)!r}")
    return ks
