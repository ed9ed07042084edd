"""Search settings and reciprocal rank fusion of the lexical and dense legs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

# Cormack et al. (2009) found k = 60 robust across collections. Here the dense leg is much the
# stronger one (multilingual, and most questions are paraphrases or English), and a small k keeps
# its top ranks ahead of passages the weaker lexical leg merely agrees on; k = 10 won the sweep on
# xquad_nl, ntrex_nl and tatoeba with and without distractors (EVALUATION.md).
RRF_K = 10
# Candidates taken from each leg before fusion.
DEPTH = 20
# The lexical leg votes at a quarter of the dense leg's weight (and less again by coverage, see
# QA.search): with more it overrules correct dense hits for English questions; EVALUATION.md.
WEIGHTS = MappingProxyType({"bm25": 0.25, "dense": 1.0})
LEGS = ("bm25", "dense")
MODES = ("hybrid", *LEGS)


@dataclass(frozen=True)
class SearchSettings:
    """How a question is searched: one immutable value, the tuned defaults in one place.

    Change one with `dataclasses.replace(settings, k=3)` (or `settings.but(k=3)`); a `QA` never
    changes its own, so threads that share one `QA` cannot see each other's settings.

    Args:
        k: how many hits.
        mode: "hybrid" (RRF of both legs), "bm25" or "dense".
        depth: candidates per leg before fusion (at least k are always taken).
        rrf_k: the RRF constant.
        weights: leg name -> weight in the fusion (a missing leg weighs 1.0).

    Raises:
        ValueError: a setting is out of range.
    """

    k: int = 10
    mode: str = "hybrid"
    depth: int = DEPTH
    rrf_k: int = RRF_K
    weights: Mapping[str, float] = field(default_factory=lambda: WEIGHTS)

    def __post_init__(self) -> None:
        for name in ("k", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 0:
            raise ValueError(f"rrf_k must be an integer >= 0, got {self.rrf_k!r}")
        weights = dict(self.weights)
        if any(not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0 for w in weights.values()):
            raise ValueError(f"weights must be numbers >= 0, got {weights!r}")
        object.__setattr__(self, "weights", MappingProxyType(weights))

    def but(self, **changes) -> SearchSettings:
        """A copy with some settings changed; None values keep the current setting."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def fusion(self) -> dict:
        """The fusion part as JSON-ready data: {"rrf_k", "depth", "weights"}."""
        return {"rrf_k": self.rrf_k, "depth": self.depth, "weights": dict(self.weights)}

    def label(self) -> str:
        w = self.weights
        return f"k={self.rrf_k} bm25:dense={w.get('bm25', 1.0):g}:{w.get('dense', 1.0):g} depth={self.depth}"

    def __hash__(self) -> int:  # weights is a mapping, which is not hashable itself
        return hash((self.k, self.mode, self.depth, self.rrf_k, tuple(sorted(self.weights.items()))))


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
