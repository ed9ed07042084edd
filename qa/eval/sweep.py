"""`sweep`: try hybrid fusion settings (RRF constant, leg weights, depth) on several sets; pick the best."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..fusion import SearchSettings
from .datasets import corpus_files, load_dataset, load_passages
from .metrics import ACCEPT_MARGIN, METRIC_KS, search_metrics
from .workspace import Workspace, progress_bar, shared_workspace

# The sweep grid. Weighted RRF ranks by w_bm25 / (k + r_bm25) + w_dense / (k + r_dense), which is
# unchanged when both weights are scaled, so only the ratio matters (0.5:1 is 1:2).
SWEEP_RRF_K = (10, 30, 60, 100)
SWEEP_WEIGHTS = ((0.25, 1.0), (0.5, 1.0), (0.75, 1.0), (1.0, 1.0), (1.0, 0.75), (1.0, 0.5))
SWEEP_DEPTHS = (20, 50, 100)
SWEEP_METRICS = ("MRR@10", "R@5")


def sweep_grid(rrf_ks: Sequence[int] = SWEEP_RRF_K, weights: Sequence[tuple[float, float]] = SWEEP_WEIGHTS,
               depths: Sequence[int] = SWEEP_DEPTHS) -> list[SearchSettings]:
    """The settings a sweep tries, the defaults (`SearchSettings()`) last unless they are in the grid."""
    grid = [SearchSettings(depth=depth, rrf_k=k, weights={"bm25": wb, "dense": wd})
            for depth in depths for k in rrf_ks for wb, wd in weights]
    if SearchSettings() not in grid:
        grid.append(SearchSettings())
    return grid


def sweep(dataset_dirs: Sequence[str | Path], *, distractors: Sequence[str | Path] = (),
          rrf_ks: Sequence[int] = SWEEP_RRF_K, weights: Sequence[tuple[float, float]] = SWEEP_WEIGHTS,
          depths: Sequence[int] = SWEEP_DEPTHS, limit: int | None = None, embedder=None, model: str | None = None,
          index_dir: str | Path | None = None, progress: bool = False, workspace: Workspace | None = None) -> dict:
    """Try every fusion setting on every set and language; pick the best.

    Each corpus is embedded once and its index reused for all settings (search() takes the
    settings per call). The best setting has the highest mean of mean-MRR@10 and mean-R@5 over the
    (set, language) groups, among the settings where hybrid is within ACCEPT_MARGIN of the better
    single leg in both metrics in every group (over all settings if none is).

    Returns:
        {"groups", "legs" (bm25/dense metrics per group), "rows" (one per setting, best first),
        "best", "default", "seconds"}.
    """
    with shared_workspace(workspace, embedder=embedder, model=model, index_dir=index_dir, progress=progress) as ws:
        started = time.perf_counter()
        sets = [load_dataset(d, limit=limit) for d in dataset_dirs]
        others = [load_passages(d) for d in distractors]
        corpora = []
        for ds in sets:
            qa, _ = ws.index(corpus_files(ds, others))
            corpora.append((ds, qa))
        ws.embedder.embed_questions([q.text for ds in sets for q in ds.questions], progress=ws.progress)
        default = SearchSettings()
        legs: dict[str, dict] = {}
        for mode in ("bm25", "dense"):
            for ds, qa in corpora:
                per = search_metrics(qa, ds.questions, mode, default, METRIC_KS, ws.progress, f"{ds.name} {mode}")
                for lang, m in per.items():
                    if lang != "all":
                        legs.setdefault(mode, {})[f"{ds.name}/{lang}"] = {n: m[n] for n in SWEEP_METRICS}
        groups = list(legs["dense"])
        rows = []
        for settings in progress_bar(sweep_grid(rrf_ks, weights, depths), "sweep", ws.progress):
            per_group = {}
            for ds, qa in corpora:
                per = search_metrics(qa, ds.questions, "hybrid", settings, METRIC_KS, False, "")
                per_group.update({f"{ds.name}/{lang}": {n: m[n] for n in SWEEP_METRICS}
                                  for lang, m in per.items() if lang != "all"})
            rows.append(_sweep_row(settings, per_group, legs, groups))
        rows.sort(key=lambda r: (not r["ok"], -r["score"]))
        return {
            "datasets": [ds.name for ds in sets], "distractors": [d.name for d in others],
            "questions": sum(len(ds.questions) for ds in sets), "groups": groups, "legs": legs,
            "rows": rows, "best": rows[0],
            "default": next(r for r in rows if r["fusion"] == default.fusion()),
            "seconds": round(time.perf_counter() - started, 2),
        }


def _sweep_row(settings: SearchSettings, per_group: dict, legs: dict, groups: list[str]) -> dict:
    means = {f"mean_{n}": round(float(np.mean([per_group[g][n] for g in groups])), 4) for n in SWEEP_METRICS}
    margins = {g: {n: round(per_group[g][n] - max(legs["bm25"][g][n], legs["dense"][g][n]), 4) for n in SWEEP_METRICS}
               for g in groups}
    worst = min(v for m in margins.values() for v in m.values())
    return {"fusion": settings.fusion(), "label": settings.label(), **means,
            "score": round(float(np.mean(list(means.values()))), 4), "worst_margin": worst,
            "ok": worst >= -ACCEPT_MARGIN, "groups": per_group}
