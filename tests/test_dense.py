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


# ---------------------------------------------------------------------------- index kinds


def _clustered(n, d=64, seed=0):
    from benchmarks.synthetic import clustered_vectors

    return clustered_vectors(n, seed=seed, centres=40, dim=d)


def _exact(vectors, q, k):
    return np.argsort(-(vectors @ q), kind="stable")[:k].tolist()


def test_auto_is_flat_up_to_the_threshold_and_hnsw_above():
    vectors = _clustered(300)
    assert DenseIndex.build(vectors, threshold=300).kind == "flat"
    index = DenseIndex.build(vectors, threshold=299)
    assert index.kind == "hnsw"
    assert index.describe() == {"kind": "hnsw", "params": {"M": 32, "efConstruction": 80, "efSearch": 128,
                                                           "storage": "fp16"}, "count": 300, "dim": 64}
    assert DenseIndex.build(vectors, kind="flat", threshold=1).describe()["kind"] == "flat"
    assert DenseIndex.build(vectors[:5], kind="hnsw").kind == "hnsw"


def test_hnsw_recall_against_exact_search_on_clustered_vectors(monkeypatch):
    import faiss

    import qa.dense

    monkeypatch.setattr(qa.dense, "PARALLEL_BUILD_MIN", 0)  # build on two threads
    vectors, queries = _clustered(4000), _clustered(50, seed=1)
    index = DenseIndex.build(vectors, threshold=1000)
    assert index.kind == "hnsw"
    assert faiss.omp_get_max_threads() == 1  # the build's extra thread is given back
    found = sum(len({r for r, _ in index.search(q, 10)} & set(_exact(vectors, q, 10))) for q in queries)
    assert found / (10 * len(queries)) >= 0.98
    for q in queries[:5]:  # cosines are inner products with float16 copies of the vectors, best first
        got = index.search(q, 10)
        np.testing.assert_allclose([s for _, s in got], vectors[[r for r, _ in got]] @ q, atol=5e-4)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


@pytest.mark.parametrize("storage", ["fp16", "float32"])
def test_hnsw_storage_kinds_find_the_same_neighbours(tmp_path, storage):
    vectors, queries = _clustered(3000), _clustered(30, seed=3)
    index = DenseIndex.build(vectors, kind="hnsw", storage=storage)
    index.save(tmp_path)
    loaded = DenseIndex.load(tmp_path)
    assert loaded.storage == storage and loaded.params["storage"] == storage
    found = sum(len({r for r, _ in loaded.search(q, 10)} & set(_exact(vectors, q, 10))) for q in queries)
    assert found / (10 * len(queries)) >= 0.98
    got = loaded.search(queries[0], 10)
    exact = vectors[[r for r, _ in got]] @ queries[0]
    np.testing.assert_allclose([s for _, s in got], exact, **({"rtol": 1e-5} if storage == "float32" else {"atol": 5e-4}))


def test_hnsw_returns_k_results_beyond_ef_search():
    vectors = _clustered(500)
    index = DenseIndex.build(vectors, kind="hnsw", ef_search=16)
    assert len(index.search(vectors[0], 200)) == 200
    assert index.ef_search == 16  # widened for that call only


def test_hnsw_save_load_round_trip(tmp_path):
    vectors = _clustered(1500)
    index = DenseIndex.build(vectors, kind="hnsw", m=16, ef_construction=80, ef_search=50)
    assert index.save(tmp_path) == ["dense.faiss"]
    loaded = DenseIndex.load(tmp_path)
    assert (loaded.kind, loaded.params, len(loaded), loaded.dim) == ("hnsw", {"M": 16, "efConstruction": 80, "efSearch": 50, "storage": "fp16"}, 1500, 64)
    for q in _clustered(5, seed=2):
        assert loaded.search(q, 10) == index.search(q, 10)


@pytest.mark.parametrize("option, value", [("kind", "ivf"), ("threshold", -1), ("m", 1), ("ef_search", 0),
                                           ("threads", 0), ("storage", "int4")])
def test_bad_options_name_the_parameter(option, value):
    with pytest.raises(ValueError, match=option):
        DenseIndex.build(_clustered(10), **{option: value})


def test_ef_search_only_for_hnsw():
    index = DenseIndex.build(_clustered(10))
    assert index.ef_search is None and index.params == {}
    with pytest.raises(ValueError, match="hnsw"):
        index.ef_search = 64
