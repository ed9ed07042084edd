"""`sweep`: try hybrid fusion settings on several sets, pick the best, and check the pick on each
set it was not tuned on (leave one set out)."""

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
# unchanged when both weights are scaled, so only the ratio matters (0.5:1 is 1:2). DBSF adds
# normalised scores with the lexical leg's share for short and for long questions.
SWEEP_RRF_K = (10, 30, 60)
SWEEP_WEIGHTS = ((0.25, 1.0), (0.5, 1.0), (1.0, 1.0), (1.5, 1.0))
SWEEP_DEPTHS = (20, 50)
SWEEP_SHARES = (0.15, 0.25)
SWEEP_LONG_SHARES = (0.4, 0.6, 0.8)
SWEEP_LONG_TERMS = (4, 6, 8, 12)
SWEEP_METRICS = ("MRR@10", "R@5")


def sweep_grid(rrf_ks: Sequence[int] = SWEEP_RRF_K, weights: Sequence[tuple[float, float]] = SWEEP_WEIGHTS,
               depths: Sequence[int] = SWEEP_DEPTHS, shares: Sequence[float] = SWEEP_SHARES,
               long_shares: Sequence[float] = SWEEP_LONG_SHARES,
               long_terms: Sequence[int] = SWEEP_LONG_TERMS) -> list[SearchSettings]:
    """The settings a sweep tries: DBSF and RRF, the defaults (`SearchSettings()`) last unless they are in the grid."""
    grid = [SearchSettings(depth=depth, fusion="dbsf", bm25_share=a, bm25_share_long=b, long_terms=t)
            for depth in depths for a in shares for b in long_shares for t in long_terms]
    grid += [SearchSettings(depth=depth, fusion="rrf", rrf_k=k, weights={"bm25": wb, "dense": wd})
             for depth in depths for k in rrf_ks for wb, wd in weights]
    if SearchSettings() not in grid:
        grid.append(SearchSettings())
    return grid


def sweep(dataset_dirs: Sequence[str | Path], *, distractors: Sequence[str | Path] = (),
          grid: Sequence[SearchSettings] | None = None, limit: int | None = None, embedder=None, model: str | None = None,
          index_dir: str | Path | None = None, progress: bool = False, workspace: Workspace | None = None) -> dict:
    """Try every fusion setting on every set and language; pick the best; check it leaving each set out.

    Each corpus is embedded once and its index reused for all settings (search() takes the
    settings per call). The best setting has the highest mean of mean-MRR@10 and mean-R@5 over the
    (set, language) groups, among the settings where hybrid is within ACCEPT_MARGIN of the better
    single leg in both metrics in every group (over all settings if none is). With two or more
    sets, the same choice is made once per set without that set's groups, and the pick is
    reported on the set left out.

    Args:
        grid: the settings to try (default: `sweep_grid()`); `SearchSettings()` is always added.

    Returns:
        {"groups", "legs" (bm25/dense metrics per group), "rows" (one per setting, best first),
        "best", "default", "leave_one_out" ({set: {"tuned", "label", "held_out" groups, "worst_margin",
        "ok"}}), "seconds"}.
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
        grid = list(grid or sweep_grid())
        if default not in grid:
            grid.append(default)  # the shipped settings always take part
        rows = []
        for settings in progress_bar(grid, "sweep", ws.progress):
            per_group = {}
            for ds, qa in corpora:
                per = search_metrics(qa, ds.questions, "hybrid", settings, METRIC_KS, False, "")
                per_group.update({f"{ds.name}/{lang}": {n: m[n] for n in SWEEP_METRICS}
                                  for lang, m in per.items() if lang != "all"})
            rows.append(_sweep_row(settings, per_group, legs, groups))
        rows.sort(key=lambda r: (not r["ok"], -r["score"]))
        names = [ds.name for ds in sets]
        return {
            "datasets": names, "distractors": [d.name for d in others],
            "questions": sum(len(ds.questions) for ds in sets), "groups": groups, "legs": legs,
            "rows": rows, "best": rows[0],
            "default": next(r for r in rows if r["fusion"] == default.fusion_settings()),
            "leave_one_out": {name: _held_out(rows, legs, groups, name) for name in names} if len(names) > 1 else {},
            "seconds": round(time.perf_counter() - started, 2),
        }


def _held_out(rows: list[dict], legs: dict, groups: list[str], name: str) -> dict:
    """The setting the sweep picks without set `name`, and how it does on `name`."""
    def group_set(group: str) -> str:
        return group.rsplit("/", 1)[0]

    train = [g for g in groups if group_set(g) != name]
    held = [g for g in groups if group_set(g) == name]
    refit = sorted((_sweep_row(None, r["groups"], legs, train) | {"row": r} for r in rows),
                   key=lambda r: (not r["ok"], -r["score"]))
    pick = refit[0]["row"]
    test = _sweep_row(None, pick["groups"], legs, held)
    return {"tuned": pick["fusion"], "label": pick["label"], "held_out": {g: pick["groups"][g] for g in held},
            "worst_margin": test["worst_margin"], "ok": test["ok"]}


def _sweep_row(settings: SearchSettings | None, per_group: dict, legs: dict, groups: list[str]) -> dict:
    means = {f"mean_{n}": round(float(np.mean([per_group[g][n] for g in groups])), 4) for n in SWEEP_METRICS}
    margins = {g: {n: round(per_group[g][n] - max(legs["bm25"][g][n], legs["dense"][g][n]), 4) for n in SWEEP_METRICS}
               for g in groups}
    worst = min(v for m in margins.values() for v in m.values())
    described = {"fusion": settings.fusion_settings(), "label": settings.label()} if settings else {}
    return {**described, **means,
            "score": round(float(np.mean(list(means.values()))), 4), "worst_margin": worst,
            "ok": worst >= -ACCEPT_MARGIN, "groups": per_group}
