"""The ONNX Runtime query path: agreement with torch fp32, the export cache, and every fallback to torch."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa import onnx_backend as ob

ROOT = Path(__file__).resolve().parent.parent


def real_questions(n_per_set: int = 10) -> list[str]:
    """Spread over the four evaluation sets: short and long, Dutch and English."""
    out = []
    for name in ("xquad_nl", "ntrex_nl", "tatoeba_nld_eng", "kamervragen_nl"):
        with open(ROOT / "data" / name / "questions.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line)["question"] for line in f]
        out += rows[:: len(rows) // n_per_set][:n_per_set]
    return out


# --- a tiny stand-in model: fast tests of the cache and fallbacks without the real export ------

def write_tiny_tokenizer(folder: Path) -> None:
    """A real (tiny) Hugging Face tokenizer in a model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[PAD]": 0, "q:": 3, "een": 4, "twee": 5, "drie": 6}, unk_token="[PAD]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 8}', encoding="utf-8")
    (folder / "tokenizer_config.json").write_text('{"pad_token": "[PAD]"}', encoding="utf-8")


def write_tiny_export(folder: Path, *, passed: bool = True) -> None:
    """An export folder holding a 4-dimensional 'model': (sum, max, count, 1) of the token ids."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "n"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "n"])
    out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, [1, 4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1, 1], [1.0])
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1),
        helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=1),
        helper.make_node("ReduceSum", ["m"], ["c"], keepdims=1),
        helper.make_node("Concat", ["s", "mx", "c", "one"], ["sentence_embedding"], axis=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [ids, mask], [out], initializer=[one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "query-int8.onnx"))
    info = {"variant": "int8", "file": "query-int8.onnx", "inputs": ["input_ids", "attention_mask"],
            "passed": passed, "probe_min_cosine": 0.999 if passed else 0.95}
    if not passed:
        info["reason"] = "it missed the fidelity bound: min cosine 0.95 < 0.99 on the probes"
    (folder / ob.INFO_FILE).write_text(json.dumps(info), encoding="utf-8")


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """A local 'model folder' and an empty cache for exports."""
    monkeypatch.setenv("NIEUWS_QA_MODEL_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    write_tiny_tokenizer(folder)
    return str(folder)


def test_export_happens_once_and_is_reused(model_dir, monkeypatch):
    pytest.importorskip("onnxruntime")
    exports = []

    def fake_export(name, folder, variant):
        exports.append((name, variant))
        write_tiny_export(folder)

    monkeypatch.setattr(ob, "export_in_child", fake_export)
    first = ob.open_query_encoder(model_dir, "int8")
    second = ob.open_query_encoder(model_dir, "int8")
    assert exports == [(model_dir, "int8")]
    assert first is not None and second is not None and second.variant == "int8"
    got = second.encode(["een twee", "drie"], "q: ")
    want = np.array([[3 + 4 + 5, 5, 3, 1], [3 + 6, 6, 2, 1]], np.float32)  # ids "q:" 3, "een" 4, "twee" 5, "drie" 6
    np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-6)
    # Run from several threads at once (highlight sentences): each text still alone, the same rows.
    many = ["een twee", "drie", "twee twee drie", "een", "drie een"]
    np.testing.assert_array_equal(second.encode(many, "q: ", workers=3), second.encode(many, "q: "))


def test_the_export_is_keyed_by_the_model_files(model_dir):
    pytest.importorskip("onnxruntime")
    before = ob.export_folder(model_dir, "int8")
    assert before == ob.export_folder(model_dir, "int8")
    assert before != ob.export_folder(model_dir, "fp32")
    (Path(model_dir) / "model.safetensors").write_bytes(b"new weights")
    assert ob.export_folder(model_dir, "int8") != before


def test_no_onnxruntime_means_torch(model_dir, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    monkeypatch.setattr(ob, "export_in_child", lambda *a: pytest.fail("no export without onnxruntime"))
    with caplog.at_level(logging.INFO, logger="nieuws-qa.embedding"):
        assert ob.open_query_encoder(model_dir, "int8") is None
    assert "onnxruntime is not installed" in caplog.text


def test_a_failed_export_means_torch_with_a_log_line(model_dir, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

    def failing(name, folder, variant):
        raise ob.ExportError("modules ['Transformer', 'Dense']: only Transformer + Pooling (+ Normalize) is exported")

    monkeypatch.setattr(ob, "export_in_child", failing)
    with caplog.at_level(logging.WARNING, logger="nieuws-qa.embedding"):
        assert ob.open_query_encoder(model_dir, "int8") is None
    assert "questions are embedded with torch: the ONNX export" in caplog.text and "Dense" in caplog.text


def test_an_export_that_missed_the_bound_is_not_used_nor_redone(model_dir, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    write_tiny_export(ob.export_folder(model_dir, "int8"), passed=False)
    monkeypatch.setattr(ob, "export_in_child", lambda *a: pytest.fail("a recorded failure is not exported again"))
    with caplog.at_level(logging.WARNING, logger="nieuws-qa.embedding"):
        assert ob.open_query_encoder(model_dir, "int8") is None
    assert "missed the fidelity bound" in caplog.text


def test_a_model_that_cannot_be_exported_is_recorded_and_not_tried_again(model_dir, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    ob.record_failure(ob.export_folder(model_dir, "int8"), "int8", "modules ['Transformer', 'Dense']: not exported")
    monkeypatch.setattr(ob, "export_in_child", lambda *a: pytest.fail("a recorded failure is not exported again"))
    with caplog.at_level(logging.WARNING, logger="nieuws-qa.embedding"):
        assert ob.open_query_encoder(model_dir, "int8") is None
    assert "Dense" in caplog.text


def test_a_broken_export_file_means_torch(model_dir, caplog):
    pytest.importorskip("onnxruntime")
    folder = ob.export_folder(model_dir, "int8")
    write_tiny_export(folder)
    (folder / "query-int8.onnx").write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING, logger="nieuws-qa.embedding"):
        assert ob.open_query_encoder(model_dir, "int8") is None
    assert "cannot open the ONNX export" in caplog.text


def test_bad_query_backend_is_refused():
    from qa.embedding import SentenceEmbedder

    with pytest.raises(ValueError, match="query_backend must be one of auto, torch, onnx-int8, onnx-fp32, got 'onnx'"):
        SentenceEmbedder(query_backend="onnx")


# --- the real bundled model ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_fp32():
    from qa.embedding import SentenceEmbedder

    return SentenceEmbedder(precision="fp32", query_backend="torch")


@pytest.mark.model
def test_onnx_int8_queries_agree_with_torch_fp32(real_embedder, torch_fp32):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    assert real_embedder.query_backend == "onnx-int8"
    questions = real_questions()
    got, want = real_embedder.encode_queries(questions), torch_fp32.encode_queries(questions)
    assert got.dtype == np.float32 and got.shape == want.shape == (40, 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(got * want, axis=1)
    # The bound is 0.99; blockwise int8 measured >= 0.9989 on 7086 questions, and dynamic int8 with
    # one activation scale per matrix (0.988, retrieval off by up to 0.016) would already fail this.
    assert cosine.min() >= 0.998, cosine
    # The identity an index records is the passages' path: the query backend is not part of it.
    assert real_embedder.identity == dataclasses.replace(torch_fp32.identity, precision=real_embedder.precision)


@pytest.mark.model
def test_onnx_queries_do_not_depend_on_the_batch(real_embedder):
    questions = real_questions(3)
    together = real_embedder.encode_queries(questions)
    alone = np.stack([real_embedder.encode_queries([q])[0] for q in questions])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.model
def test_onnx_fp32_equals_torch_fp32(torch_fp32):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from qa.embedding import SentenceEmbedder

    emb = SentenceEmbedder(precision="fp32", query_backend="onnx-fp32")
    assert emb.query_backend == "onnx-fp32"
    questions = real_questions(5)
    cosine = np.sum(emb.encode_queries(questions) * torch_fp32.encode_queries(questions), axis=1)
    assert cosine.min() >= 0.9999, cosine


@pytest.mark.model
def test_second_start_reuses_the_export(real_embedder, monkeypatch):
    pytest.importorskip("onnxruntime")
    from qa.embedding import SentenceEmbedder

    assert real_embedder.query_backend == "onnx-int8"  # the session's model exported it (or found it)
    monkeypatch.setattr(ob, "export_in_child", lambda *a: pytest.fail("exported again"))
    again = SentenceEmbedder()
    assert again.query_backend == "onnx-int8"
    q = ["Wie won het WK voetbal in Qatar?"]
    np.testing.assert_array_equal(again.encode_queries(q), real_embedder.encode_queries(q))


@pytest.mark.model
def test_torch_when_onnxruntime_is_missing(monkeypatch, torch_fp32):
    from qa.embedding import SentenceEmbedder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    emb = SentenceEmbedder(precision="fp32")
    assert emb.query_backend == "torch"
    q = ["Hoeveel vierkante kilometer is in minder dan een week bevrijd?"]
    np.testing.assert_allclose(emb.encode_queries(q), torch_fp32.encode_queries(q), atol=1e-6)


@pytest.mark.model
def test_the_folder_tokenizer_gives_the_ids_of_sentence_transformers(real_embedder):
    from qa.bundled_model import bundled_model_path
    from qa.chunking import split_sentences

    with open(ROOT / "data" / "xquad_nl" / "passages.jsonl", encoding="utf-8") as f:
        passage = json.loads(f.readline())["text"]
    texts = [*real_questions(), *(passage[a:b] for a, b in split_sentences(passage)), passage * 20, "", "  twee  spaties ",
             "financiële één café naïef — „citaat” (1.127 dagen)\t\n"]
    tokenizer = ob.TextTokenizer.from_folder(bundled_model_path())
    for prompt in ("query: ", "passage: "):
        for text, (ids, mask, _) in zip(texts, tokenizer(texts, prompt)):
            want = ob._tokenize(real_embedder.model, text, prompt)  # sentence-transformers' own preprocessing
            assert ids == want["input_ids"][0].tolist() and mask == want["attention_mask"][0].tolist(), text[:60]
    assert len(tokenizer([passage * 20], "query: ")[0][0]) == 512  # truncated at max_seq_length


@pytest.mark.model
def test_highlight_sentences_take_the_onnx_path_and_agree_with_torch_fp32(real_embedder, torch_fp32):
    from qa.chunking import split_sentences

    with open(ROOT / "data" / "ntrex_nl" / "passages.jsonl", encoding="utf-8") as f:
        passages = [json.loads(line)["text"] for line, _ in zip(f, range(5))]
    sentences = [p[a:b] for p in passages for a, b in split_sentences(p)]
    got = real_embedder.encode_sentences(sentences)
    assert got.shape == (len(sentences), 384)
    assert np.sum(got * torch_fp32.encode_passages(sentences), axis=1).min() >= 0.999  # measured >= 0.9994


@pytest.mark.model
def test_answering_from_the_command_line_loads_neither_torch_nor_sentence_transformers(seed_index):
    # (seed_index was built with the session's model, which made the ONNX export if it was missing.)
    code = ("import sys\nfrom qa.cli import main\nassert main(sys.argv[1:]) == 0\n"
            "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
            "sys.exit(f'imported {heavy}' if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code, "ask", "--index", str(seed_index),
                           "Wie zijn uitgenodigd voor de informele bijeenkomst op Poetins verjaardag?"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Daarvoor zouden de leiders van voormalige Sovjetlanden zijn uitgenodigd" in done.stdout
