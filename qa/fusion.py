"""Search settings and the fusion of the lexical and dense legs: normalised scores (the default)
or reciprocal ranks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

# The default fusion adapts to the question. A long question with many words found in the corpus
# (a written parliamentary question, a pasted sentence) is best served by the lexical leg; a short
# or translated one by the multilingual dense leg. Each leg's scores are normalised per question
# (DBSF: its top-DEPTH scores mapped from mean - 3 sd .. mean + 3 sd to 0 .. 1) and added with
# the lexical leg's share `bm25_share` for questions with fewer than LONG_TERMS analysed terms
# found in the corpus and `bm25_share_long` for the others, both times the share of the
# question's terms found in the corpus (an English question over Dutch news shares a name or a
# number at best). Chosen by `qa eval --sweep` on all four sets with a leave-one-set-out check:
# the only family that keeps hybrid at least as good as the better leg on every set and language
# while adding 0.06 R@5 on native Dutch questions (EVALUATION.md).
DEPTH = 50
BM25_SHARE, BM25_SHARE_LONG, LONG_TERMS = 0.25, 0.6, 6
# Reciprocal rank fusion, the earlier default (fusion="rrf"). Cormack et al. (2009) found k = 60
# robust across collections; here a small k keeps the stronger dense leg's top ranks ahead of
# passages the lexical leg merely agrees on, and the lexical leg votes at a quarter of the dense
# leg's weight (times the same coverage); EVALUATION.md.
RRF_K = 10
WEIGHTS = MappingProxyType({"bm25": 0.25, "dense": 1.0})
LEGS = ("bm25", "dense")
MODES = ("hybrid", *LEGS)
FUSIONS = ("dbsf", "rrf")


@dataclass(frozen=True)
class SearchSettings:
    """How a question is searched: one immutable value, the tuned defaults in one place.

    Change one with `dataclasses.replace(settings, k=3)` (or `settings.but(k=3)`); a `QA` never
    changes its own, so threads that share one `QA` cannot see each other's settings.

    Args:
        k: how many hits.
        mode: "hybrid" (both legs fused), "bm25" or "dense".
        depth: candidates per leg before fusion (at least k are always taken).
        fusion: "dbsf" (normalised scores, the lexical leg's share set per question) or "rrf".
        bm25_share, bm25_share_long, long_terms: dbsf: the lexical leg's share of the fused
            score for questions with fewer than / at least `long_terms` analysed terms found in
            the corpus (each times the share of the question's terms found in the corpus).
        rrf_k: rrf: the RRF constant.
        weights: rrf: leg name -> weight (a missing leg weighs 1.0).

    Raises:
        ValueError: a setting is out of range.
    """

    k: int = 10
    mode: str = "hybrid"
    depth: int = DEPTH
    fusion: str = "dbsf"
    bm25_share: float = BM25_SHARE
    bm25_share_long: float = BM25_SHARE_LONG
    long_terms: int = LONG_TERMS
    rrf_k: int = RRF_K
    weights: Mapping[str, float] = field(default_factory=lambda: WEIGHTS)

    def __post_init__(self) -> None:
        for name, low in (("k", 1), ("depth", 1), ("long_terms", 0), ("rrf_k", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        for name in ("bm25_share", "bm25_share_long"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
        weights = dict(self.weights)
        if any(not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0 for w in weights.values()):
            raise ValueError(f"weights must be numbers >= 0, got {weights!r}")
        object.__setattr__(self, "weights", MappingProxyType(weights))

    def but(self, **changes) -> SearchSettings:
        """A copy with some settings changed; None values keep the current setting."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def fusion_settings(self) -> dict:
        """The fusion part as JSON-ready data (keyword arguments of SearchSettings)."""
        return {"fusion": self.fusion, "depth": self.depth, "bm25_share": self.bm25_share,
                "bm25_share_long": self.bm25_share_long, "long_terms": self.long_terms,
                "rrf_k": self.rrf_k, "weights": dict(self.weights)}

    def label(self) -> str:
        if self.fusion == "dbsf":
            return (f"dbsf bm25 share {self.bm25_share:g} (>= {self.long_terms} terms: {self.bm25_share_long:g}) "
                    f"depth={self.depth}")
        w = self.weights
        return f"rrf k={self.rrf_k} bm25:dense={w.get('bm25', 1.0):g}:{w.get('dense', 1.0):g} depth={self.depth}"

    def __hash__(self) -> int:  # weights is a mapping, which is not hashable itself
        return hash((self.k, self.mode, self.depth, self.fusion, self.bm25_share, self.bm25_share_long,
                     self.long_terms, self.rrf_k, tuple(sorted(self.weights.items()))))


def found_by(ranks: dict) -> str:
    """'both', 'bm25', 'dense' or 'none': which legs found a chunk, from its rank per leg."""
    legs = [leg for leg in LEGS if ranks.get(leg) is not None]
    return "both" if len(legs) == len(LEGS) else (legs[0] if legs else "none")


@dataclass(frozen=True)
class Hit:
    """A fused search result: chunk row, fused score, and what each leg said about it."""

    row: int
    score: float
    ranks: dict = field(default_factory=dict)        # leg -> 1-based rank, or None if not found
    leg_scores: dict = field(default_factory=dict)   # leg -> raw score, or None
    also: tuple[str, ...] = ()   # the doc_ids of the other copies of its article (wire copies, news.py)

    @property
    def found_by(self) -> str:
        """'both', 'bm25', 'dense' (the leg names of the legs that found the chunk)."""
        return found_by(self.ranks)


def dbsf(legs: dict[str, list[tuple[int, float]]], *, weights: Mapping[str, float], limit: int | None = None) -> list[Hit]:
    """Fuse scored lists by distribution-based score fusion: sum of w_leg * normalised score.

    Each leg's scores are mapped from (mean - 3 sd) .. (mean + 3 sd) of that list to 0 .. 1 (all
    1.0 when the list has one distinct score), so a leg's spread, not its scale, counts; a row a
    leg did not return gets 0 from it.

    Args:
        legs: leg name -> list of (row, leg score), best first.
        weights: leg name -> weight (a missing leg weighs 1.0).
        limit: return only the best `limit` hits.

    Returns:
        As `rrf`: best fused score first, ties to the lower row, ranks and scores per leg.
    """
    def normalised(results: list[tuple[int, float]]) -> list[float]:
        if not results:
            return []
        scores = np.array([s for _, s in results], dtype=np.float64)
        low, spread = scores.mean() - 3 * scores.std(), 6 * scores.std()
        return ((scores - low) / spread).tolist() if spread > 0 else [1.0] * len(scores)

    return _fuse(legs, lambda leg, results: [float(weights.get(leg, 1.0)) * v for v in normalised(results)], limit)


def rrf(legs: dict[str, list[tuple[int, float]]], *, k: int = RRF_K, weights: Mapping[str, float] | None = None,
        limit: int | None = None) -> list[Hit]:
    """Fuse ranked lists with weighted reciprocal rank fusion: sum of w_leg / (k + rank).

    Args:
        legs: leg name -> list of (row, leg score), best first.
        k: the RRF constant (ranks start at 1).
        weights: optional leg name -> weight (default 1.0 each).
        limit: return only the best `limit` hits.

    Returns:
        Every row found by any leg (up to `limit`), best fused score first; ties go to the lower
        row. Each hit's ranks and leg_scores name every leg of LEGS and of `legs` (None where
        that leg did not find the row or was not run).
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    weights = weights or {}
    return _fuse(legs, lambda leg, results: [float(weights.get(leg, 1.0)) / (k + rank)
                                             for rank in range(1, len(results) + 1)], limit)


def _fuse(legs: dict[str, list[tuple[int, float]]], contributions, limit: int | None) -> list[Hit]:
    # Add up each leg's contribution per row (`contributions(leg, results)`, one per result).
    fused: dict[int, float] = {}
    ranks: dict[int, dict] = {}
    scores: dict[int, dict] = {}
    for leg, results in legs.items():
        for rank, ((row, score), part) in enumerate(zip(results, contributions(leg, results)), start=1):
            fused[row] = fused.get(row, 0.0) + part
            ranks.setdefault(row, {})[leg] = rank
            scores.setdefault(row, {})[leg] = score
    names = list(dict.fromkeys([*LEGS, *legs]))
    return [
        Hit(row, fused[row], {leg: ranks[row].get(leg) for leg in names}, {leg: scores[row].get(leg) for leg in names})
        for row in sorted(fused, key=lambda r: (-fused[r], r))[:limit]
    ]
