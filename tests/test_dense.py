import numpy as np
import pytest

from qa.dense import DenseIndex


def _unit(rng, n, d):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_faiss_search_matches_numpy_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    vectors, queries = _unit(rng, 2000, 64), _unit(rng, 30, 64)
    index = DenseIndex.build(vectors)
    for q in queries:
        got = index.search(q, 10)
        scores = vectors @ q
        want = np.argsort(-scores, kind="stable")[:10]
        assert [r for r, _ in got] == want.tolist()
        np.testing.assert_allclose([s for _, s in got], scores[want], rtol=1e-5)
    index.save(tmp_path)
    loaded = DenseIndex.load(tmp_path)
    assert loaded.search(queries[0], 10) == index.search(queries[0], 10)


@pytest.mark.parametrize("k", [0, 1, 5, 50])
def test_k_larger_than_corpus(k):
    index = DenseIndex.build(_unit(np.random.default_rng(1), 5, 8))
    assert len(index.search(np.ones(8, np.float32) / np.sqrt(8), k)) == min(k, 5)


def test_empty_index():
    index = DenseIndex.build(np.zeros((0, 8), np.float32))
    assert index.search(np.ones(8, np.float32), 5) == []
