"""The embedding precision path: bf16 matrix products must give the fp32 model's embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from qa.embedding import ModelIdentity, SentenceEmbedder, cpu_has_bf16

pytestmark = pytest.mark.model

SENTENCES = [
    "Het Oekraïense leger heeft in minder dan een week 400 vierkante kilometer bevrijd.",
    "De inflatie in Nederland daalde in december naar 9,6 procent, meldt het CBS.",
    "Argentinië won het WK voetbal in Qatar na strafschoppen tegen Frankrijk.",
    "Het KNMI waarschuwt voor gladheid in het noorden; de temperatuur daalt tot min 5 graden.",
    "Bij de Provinciale Statenverkiezingen werd de BBB de grootste partij.",
    "Astronomen van de Universiteit Leiden ontdekten een nieuwe exoplaneet.",
    "De planeet draait in 1.127 dagen om haar ster.",
    "Kim Jong-un looft de in een oorlog verwikkelde Poetin.",
    "De verdediging van de Panthers stond slechts 308 punten toe.",
    "financiële één café naïef — „citaat” (1.127 dagen)",
    "Dat meldden de strijdkrachten donderdag.",
    "Zelenski sprak over 500 vierkante kilometer.",
    "hallo",
    "How many square kilometres were liberated in less than a week?",
    "Who won the 2022 World Cup?",
    "Inflation in the Netherlands fell to 9.6 percent in December.",
    "The weather service warns of icy roads in the north.",
    "Which party won the provincial elections?",
    "Astronomers in Leiden discovered a new exoplanet orbiting its star every 1,127 days.",
    "The Panthers defense gave up just 308 points, ranking sixth in the league.",
]


# Both on the torch path for questions too: the ONNX query backend is tested in test_onnx_backend.py.
@pytest.fixture(scope="module")
def fp32_embedder():
    return SentenceEmbedder(precision="fp32", query_backend="torch")


@pytest.fixture(scope="module")
def bf16_embedder(real_embedder):
    # The default on CPUs with native bf16 is bf16 already; elsewhere build one on purpose.
    if real_embedder.precision == "bf16" and real_embedder.query_backend == "torch":
        return real_embedder
    return SentenceEmbedder(precision="bf16", query_backend="torch")


def test_default_precision_follows_the_cpu(real_embedder):
    assert real_embedder.precision == ("bf16" if cpu_has_bf16() else "fp32")
    assert real_embedder.identity.precision == real_embedder.precision


@pytest.mark.parametrize("encode", ["encode_passages", "encode_queries"])
def test_bf16_keeps_fp32_embeddings(fp32_embedder, bf16_embedder, encode):
    want = getattr(fp32_embedder, encode)(SENTENCES)
    got = getattr(bf16_embedder, encode)(SENTENCES)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(got * want, axis=1)
    # The acceptance bound is 0.99; bf16 matmuls with an fp32 residual stream measure >= 0.9999,
    # and casting the whole model to bf16 (0.998) would already fail this.
    assert cosine.min() >= 0.999, cosine


def test_bf16_ranks_like_fp32(fp32_embedder, bf16_embedder):
    questions, passages = SENTENCES[13:], SENTENCES[:12]
    best = [np.argmax(emb.encode_queries(questions) @ emb.encode_passages(passages).T, axis=1)
            for emb in (fp32_embedder, bf16_embedder)]
    assert best[0].tolist() == best[1].tolist()


def test_identity_records_precision(fp32_embedder, bf16_embedder):
    assert bf16_embedder.identity.to_dict()["precision"] == "bf16"
    # fp32 is the implicit default, so manifests written before precision existed still match.
    assert "precision" not in fp32_embedder.identity.to_dict()
    assert ModelIdentity("m", 8).precision == "fp32"


def test_bad_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        SentenceEmbedder(precision="fp16")
    with pytest.raises(ValueError, match="threads"):
        SentenceEmbedder(threads=0)
