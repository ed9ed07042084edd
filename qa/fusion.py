"""Reciprocal rank fusion of the lexical and dense legs."""

from __future__ import annotations

from dataclasses import dataclass, field

# Cormack et al. (2009) found k = 60 robust across collections. Here the dense leg is much the
# stronger one (multilingual, and most questions are paraphrases or English), and a small k keeps
# its top ranks ahead of passages the weaker lexical leg merely agrees on; k = 10 won the sweep on
# xquad_nl, ntrex_nl and tatoeba with and without distractors (EVALUATION.md).
RRF_K = 10
LEGS = ("bm25", "dense")


@dataclass(frozen=True)
class Hit:
    """A fused search result: chunk row, fused score, and what each leg said about it."""

    row: int
    score: float
    ranks: dict = field(default_factory=dict)        # leg -> 1-based rank, or None if not found
    leg_scores: dict = field(default_factory=dict)   # leg -> raw score, or None

    @property
    def found_by(self) -> str:
        """'both', 'bm25', 'dense' (the leg names of the legs that found the chunk)."""
        legs = [leg for leg in LEGS if self.ranks.get(leg) is not None]
        return "both" if len(legs) == len(LEGS) else (legs[0] if legs else "none")


def rrf(legs: dict[str, list[tuple[int, float]]], *, k: int = RRF_K, weights: dict | None = None,
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
    fused: dict[int, float] = {}
    ranks: dict[int, dict] = {}
    scores: dict[int, dict] = {}
    for leg, results in legs.items():
        w = float(weights.get(leg, 1.0))
        for rank, (row, score) in enumerate(results, start=1):
            fused[row] = fused.get(row, 0.0) + w / (k + rank)
            ranks.setdefault(row, {})[leg] = rank
            scores.setdefault(row, {})[leg] = score
    names = list(dict.fromkeys([*LEGS, *legs]))
    return [
        Hit(row, fused[row], {leg: ranks[row].get(leg) for leg in names}, {leg: scores[row].get(leg) for leg in names})
        for row in sorted(fused, key=lambda r: (-fused[r], r))[:limit]
    ]
