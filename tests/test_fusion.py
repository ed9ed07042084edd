import numpy as np
import pytest

from qa.fusion import dbsf, rrf


def test_rrf_matches_hand_computed_values():
    legs = {"bm25": [(7, 12.0), (3, 9.0), (5, 1.0)], "dense": [(3, 0.9), (8, 0.8)]}
    hits = rrf(legs, k=60)
    by_row = {h.row: h for h in hits}
    assert by_row[3].score == pytest.approx(1 / 62 + 1 / 61)
    assert by_row[7].score == pytest.approx(1 / 61)
    assert by_row[8].score == pytest.approx(1 / 62)
    assert by_row[5].score == pytest.approx(1 / 63)
    assert [h.row for h in hits] == [3, 7, 8, 5]
    assert by_row[3].ranks == {"bm25": 2, "dense": 1} and by_row[3].found_by == "both"
    assert by_row[7].ranks == {"bm25": 1, "dense": None} and by_row[7].found_by == "bm25"
    assert by_row[8].leg_scores == {"bm25": None, "dense": 0.8} and by_row[8].found_by == "dense"


def test_rrf_weights_and_k():
    legs = {"bm25": [(1, 5.0)], "dense": [(2, 0.5)]}
    hits = rrf(legs, k=10, weights={"bm25": 0.5, "dense": 2.0})
    assert [h.row for h in hits] == [2, 1]
    assert hits[0].score == pytest.approx(2.0 / 11) and hits[1].score == pytest.approx(0.5 / 11)


def test_rrf_ties_go_to_lower_row_and_empty_legs():
    hits = rrf({"bm25": [(9, 1.0)], "dense": [(4, 1.0)]})
    assert [h.row for h in hits] == [4, 9]
    assert rrf({"bm25": [], "dense": []}) == []
    assert [h.row for h in rrf({"bm25": [], "dense": [(2, 0.3)]})] == [2]


def test_rrf_rejects_negative_k():
    with pytest.raises(ValueError, match="k must be"):
        rrf({"bm25": [(1, 1.0)]}, k=-1)


def test_dbsf_adds_normalised_scores_with_the_leg_weights():
    legs = {"bm25": [(1, 12.0), (2, 6.0), (3, 3.0)], "dense": [(3, 0.9), (4, 0.85)]}
    hits = dbsf(legs, weights={"bm25": 0.3, "dense": 0.7})

    def norm(scores, s):
        return (s - (np.mean(scores) - 3 * np.std(scores))) / (6 * np.std(scores))

    expected = {1: 0.3 * norm([12, 6, 3], 12), 2: 0.3 * norm([12, 6, 3], 6),
                3: 0.3 * norm([12, 6, 3], 3) + 0.7 * norm([0.9, 0.85], 0.9), 4: 0.7 * norm([0.9, 0.85], 0.85)}
    assert [h.row for h in hits] == sorted(expected, key=lambda r: (-expected[r], r))
    assert all(h.score == pytest.approx(expected[h.row]) for h in hits)
    assert {h.row: h.ranks for h in hits}[3] == {"bm25": 3, "dense": 1}


def test_dbsf_edge_cases():
    assert dbsf({"bm25": [], "dense": []}, weights={}) == []
    # One distinct score: every result counts fully; a zero weight leaves only the order of the other leg.
    hits = dbsf({"bm25": [(5, 2.0), (6, 2.0)], "dense": [(7, 0.5), (5, 0.4)]}, weights={"bm25": 0.0, "dense": 1.0})
    assert [h.row for h in hits] == [7, 5, 6] and len(dbsf({"bm25": [(1, 1.0), (2, 0.5)]}, weights={}, limit=1)) == 1
